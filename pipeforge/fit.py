"""Fitting on other machines' cores: a joblib parallel backend around an estimator.

Palladium's ``palladium.fit`` maps here, so its configs keep working::

    'grid_search': {
        '__factory__': 'pipeforge.fit.with_parallel_backend',
        'estimator': {
            '__factory__': 'sklearn.model_selection.GridSearchCV',
            'estimator': {'__copy__': 'model'},
            'param_grid': {'C': [0.1, 0.3, 1.0]},
            'n_jobs': -1,
        },
        'backend': 'dask',
        'scheduler_host': '127.0.0.1:8786',   # or $DASK_SCHEDULER_ADDRESS
    },

With the ``dask`` backend (``dask.distributed`` is Palladium's name for
it) the estimator's joblib work — a grid search's fits — runs on the Dask
cluster whose scheduler is ``scheduler_host`` (or the ``DASK_SCHEDULER_ADDRESS``
environment variable, or dask's ``scheduler-address`` setting). A client
connects for each call and closes after it. The training functions are
re-exported so ``pipeforge.fit.fit`` (``palladium.fit.fit``) works too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import ConfigError
from .training import fit, grid_search, test

__all__ = ["with_parallel_backend", "parallel_backend", "fit", "test", "grid_search"]

logger = logging.getLogger(__name__)

_DASK = ("dask", "dask.distributed", "distributed")


def _scheduler_address(params: dict) -> str:
    address = params.pop("scheduler_host", None) or params.pop("scheduler_address", None)
    if not address:
        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address:
        try:
            import dask

            address = dask.config.get("scheduler-address", None)
        except ImportError:
            address = None
    if not address:
        raise ConfigError(
            "the dask backend needs the scheduler's address: set 'scheduler_host' "
            "(e.g. 'tcp://10.0.0.5:8786') or the DASK_SCHEDULER_ADDRESS environment variable",
            key="grid_search.scheduler_host",
        )
    return str(address)


@contextlib.contextmanager
def parallel_backend(backend: str, **backend_params: Any) -> Iterator[None]:
    """``joblib.parallel_backend(backend, **backend_params)``, connecting to Dask when asked."""
    import joblib

    params = dict(backend_params)
    if backend not in _DASK or "client" in params:
        with joblib.parallel_backend("dask" if backend in _DASK else backend, **params):
            yield
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(
            f"the dask backend needs the 'dask' extra (pip install 'pipeforge[dask]'): {exc}",
            key="grid_search.backend",
        ) from exc
    address = _scheduler_address(params)
    logger.info("running joblib work on the Dask cluster at %s", address)
    with Client(address, set_as_default=False) as client:
        with joblib.parallel_backend("dask", client=client, **params):
            yield


class _InBackend:
    """A method of ``owner`` that runs inside the parallel backend (picklable with it)."""

    def __init__(self, owner: Any, name: str, backend: str, backend_params: dict):
        self.owner = owner
        self.name = name
        self.backend = backend
        self.backend_params = backend_params

    def __call__(self, *args, **kwargs):
        with parallel_backend(self.backend, **self.backend_params):
            return self._method()(*args, **kwargs)

    def _method(self):
        """The class's own method bound to ``owner`` (the instance attribute is this wrapper)."""
        cls = type(self.owner)
        for klass in cls.__mro__:
            if self.name in vars(klass):
                return vars(klass)[self.name].__get__(self.owner, cls)
        raise AttributeError(f"{cls.__name__} has no method {self.name!r}")


def with_parallel_backend(
    estimator: Any,
    backend: str,
    methods: Sequence[str] = ("fit", "predict", "predict_proba"),
    **backend_params: Any,
) -> Any:
    """Make ``estimator``'s ``methods`` run inside ``joblib.parallel_backend(backend, ...)``.

    Returns the same estimator (as Palladium did), so a ``GridSearchCV``
    stays one. Methods the estimator lacks are skipped.
    """
    if not isinstance(backend, str) or not backend:
        raise ConfigError(
            f"parameter 'backend' of with_parallel_backend must be a joblib backend name such as "
            f"'dask', 'loky' or 'threading'; got {backend!r} instead",
            key="grid_search.backend",
        )
    for name in methods:
        if hasattr(estimator, name):
            setattr(estimator, name, _InBackend(estimator, name, backend, dict(backend_params)))
    return estimator
