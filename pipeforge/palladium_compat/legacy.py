"""Palladium's process-wide helpers, for user code written against Palladium.

Palladium kept one Flask app, one config and one process store per process
in module globals, and user modules reach for them: ``from palladium.server
import app``, ``from palladium.util import process_store``,
``@args_from_config``. pipeforge passes these things around explicitly;
this module is the one place that offers them the old way, each built on
first use, for the names in :mod:`pipeforge.palladium_names`. pipeforge's own
code never imports it.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import MutableMapping
from datetime import datetime
from functools import wraps

from ..errors import ConfigError, PipeforgeError
from ..interfaces import Model as _PipeforgeModel

logger = logging.getLogger("palladium")  # Palladium's logger name: users' logging configs use it

_lock = threading.RLock()
_shared: dict = {}


# -- the Flask app and the config of this process ------------------------------------


def shared_app():
    """``palladium.server.app``: the one Flask object of this process, made on first use.

    User modules may register routes or extensions on it while the config
    loads; :func:`wsgi_app` and ``pld-devserver`` then build the service on it.
    """
    with _lock:
        if "app" not in _shared:
            from flask import Flask

            _shared["app"] = Flask("palladium")
        return _shared["app"]


def wsgi_app():
    """``palladium.wsgi:app``: the service built on :func:`shared_app` from the environment's config.

    Like ``pipeforge.wsgi:app``: a broken config stops gunicorn with one line
    instead of respawning workers that cannot boot.
    """
    with _lock:
        if "wsgi" in _shared:
            return _shared["wsgi"]
        import sys

        from ..config import initialize_config
        from ..server.app import create_app

        try:
            config = initialize_config(__mode__="predict")
            app = create_app(config, start_background=True, flask_app=shared_app())
        except (PipeforgeError, ImportError, OSError) as exc:
            message = f"pipeforge cannot start the web service: {exc}"
            if "gunicorn" in sys.modules:
                from gunicorn.errors import AppImportError

                raise AppImportError(message) from None
            logging.getLogger(__name__).critical(message)
            raise
        _shared["wsgi"] = app
        return app


def _config():
    from ..config import get_config

    return get_config()


class _ProcessStoreProxy(MutableMapping):
    """``palladium.util.process_store``: the process store of the program's config.

    Looked up at each use, so a module may import it before the config is built.
    """

    def _store(self):
        return _config().process_store

    def __getitem__(self, key):
        return self._store()[key]

    def __setitem__(self, key, value):
        self._store()[key] = value

    def __delitem__(self, key):
        del self._store()[key]

    def __iter__(self):
        return iter(self._store())

    def __len__(self):
        return len(self._store())

    def __getattr__(self, name):  # mtime, missing, ...
        return getattr(self._store(), name)

    def __repr__(self) -> str:
        return "<process_store of the current pipeforge config>"


process_store = _ProcessStoreProxy()


# -- helpers that read the config themselves ------------------------------------------


def args_from_config(func):
    """Fill the parameters of ``func`` the caller leaves out from the config entries of the same name."""
    parameters = list(inspect.signature(func).parameters)

    @wraps(func)
    def wrapper(*args, **kwargs):
        config = _config()
        for name in parameters[len(args) :]:
            if name not in kwargs and name in config:
                kwargs[name] = config[name]
        try:
            inspect.signature(func).bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"{func.__name__}: {exc}; is the entry missing from the configuration?"
            ) from None
        return func(*args, **kwargs)

    wrapper.__wrapped__ = func
    return wrapper


class PluggableDecorator:
    """Wrap a function in the decorators the config lists under ``decorator_config_name``.

    The list is read at the first call, once the config exists.
    """

    def __init__(self, decorator_config_name: str):
        self.decorator_config_name = decorator_config_name

    def __call__(self, func):
        wrapped = []

        @wraps(func)
        def wrapper(*args, **kwargs):
            if not wrapped:
                from ..factory import decorate

                wrapped.append(decorate(func, _config(), self.decorator_config_name))
            return wrapped[0](*args, **kwargs)

        return wrapper


def get_metadata(error_code: int = 0, error_message: str | None = None, status: str = "OK") -> dict:
    """The ``metadata`` of a response: status, error and the config's ``service_metadata``."""
    metadata = {"status": status, "error_code": error_code}
    if error_message is not None:
        metadata["error_message"] = error_message
    metadata.update(_config().get("service_metadata") or {})
    return metadata


def apply_kwargs(func, **kwargs):
    """Call ``func`` with those of ``kwargs`` it has parameters for."""
    accepted = inspect.signature(func).parameters
    return func(**{name: value for name, value in kwargs.items() if name in accepted})


@contextlib.contextmanager
def timer(log=None, message=None):
    """Log ``message...`` and ``message done in N sec.`` around a block; yields a dict with ``elapsed``."""
    if log is not None:
        log(f"{message}...")
    info: dict = {}
    started = time.monotonic()
    yield info
    info["elapsed"] = time.monotonic() - started
    if log is not None:
        log(f"{message} done in {info['elapsed']:.3f} sec.")


@contextlib.contextmanager
def session_scope(session):
    """Commit an SQLAlchemy session after the block, roll back on an error, close it always."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def memory_usage_psutil() -> tuple[float, float]:
    """The resident and virtual memory of this process in MB."""
    import psutil

    info = psutil.Process(os.getpid()).memory_info()
    return info.rss / 2**20, info.vms / 2**20


def run_job(func, **params):
    """Run ``func(**params)`` in a thread, recorded under ``process_metadata['jobs']``; return ``(thread, job_id)``."""
    job_id = str(uuid.uuid4())
    jobs = process_store["process_metadata"].setdefault("jobs", {})
    record = jobs[job_id] = {
        "func": repr(func),
        "started": str(datetime.now()),
        "status": "running",
    }

    def run():
        record["thread"] = threading.get_ident()
        try:
            result = func(**params)
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            record.update(status="error", info=f"{type(exc).__name__}: {exc}")
        else:
            record.update(status="finished", info=str(result))

    thread = threading.Thread(target=run, name=f"palladium-job-{job_id}", daemon=True)
    thread.start()
    return thread, job_id


def make_ujson_response(obj, status_code: int = 200):
    """A JSON Flask response (Palladium encoded with ujson; the output is the same JSON)."""
    from ..server.predict_service import json_response

    return json_response(obj, status_code)


# -- Palladium's interfaces that pipeforge does not have as such ---------------------


def __getattr__(name: str):
    # Model needs scikit-learn, so it is made on first use.
    if name == "Model":
        with _lock:
            if "Model" not in _shared:
                from sklearn.base import BaseEstimator

                class Model(BaseEstimator, _PipeforgeModel):
                    """Palladium's Model: pipeforge's interface with scikit-learn's ``get_params``."""

                    __module__ = "palladium.interfaces"
                    __qualname__ = "Model"

                _shared["Model"] = Model
            return _shared["Model"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CrossValidationGenerator(abc.ABC):
    """Yields ``(train_indices, test_indices)`` pairs, like scikit-learn's splitters."""

    @abc.abstractmethod
    def __iter__(self):
        """Yield the splits."""


# -- Palladium's functions that took their arguments from the config -----------------


@args_from_config
def fit(
    dataset_loader_train,
    model,
    model_persister=None,
    persist=True,
    activate=True,
    dataset_loader_test=None,
    evaluate=False,
    persist_if_better_than=None,
    scoring=None,
):
    """Fit, evaluate and store the config's model; returns the model (as Palladium's ``fit``)."""
    from .. import training
    from ..factory import decorate

    run = decorate(training.fit, _config(), "fit_decorators")
    return run(
        dataset_loader_train,
        model,
        model_persister,
        persist=persist,
        activate=activate,
        dataset_loader_test=dataset_loader_test,
        evaluate=evaluate or persist_if_better_than is not None,
        # Palladium stored a model whose score equals the threshold; pipeforge wants "better".
        persist_if_better_than=None
        if persist_if_better_than is None
        else math.nextafter(persist_if_better_than, -math.inf),
        scoring=scoring,
    ).model


@args_from_config
def test(dataset_loader_test, model_persister, scoring=None, model_version=None):
    """Score a stored model on the test data; returns Palladium's ``["name: score", ...]`` lines."""
    from .. import training

    if scoring is not None and not isinstance(scoring, dict):
        scoring = {"score": scoring}
    scores = training.test(
        dataset_loader_test, model_persister, scoring=scoring, model_version=model_version
    )
    return [f"{name}: {value}" for name, value in scores.items()]


test.__test__ = False  # a library function, not a test for pytest to collect


@args_from_config
def list_models(model_persister):
    """Print the stored models and the store's properties as ``pld-list`` does."""
    from .scripts import print_listing

    print_listing(model_persister)


@args_from_config
def grid_search(
    dataset_loader_train,
    model,
    grid_search,
    scoring=None,
    save_results=None,
    persist_best=False,
    model_persister=None,
):
    """Run the config's grid search; returns the fitted search object."""
    from .. import training

    return training.grid_search(
        dataset_loader_train,
        model,
        grid_search,
        scoring=scoring,
        save_results=save_results,
        persist_best=persist_best,
        model_persister=model_persister,
    )


@args_from_config
def activate(model_persister, model_version):
    model_persister.activate(model_version)
    logger.info("Activated model with version %s.", model_version)


@args_from_config
def delete(model_persister, model_version):
    model_persister.delete(model_version)
    logger.info("Deleted model with version %s.", model_version)


@args_from_config
def upgrade(model_persister, from_version=None, to_version=None):
    """Run the model store's upgrade steps; returns the steps that ran."""
    return model_persister.upgrade(from_version=from_version, to_version=to_version)


@args_from_config
def export(model_persister, model_persister_export, model_version=None, activate=True):
    """Copy a model to ``model_persister_export``; returns its version there."""
    model = model_persister.read(version=model_version)
    version = model_persister_export.write(model)
    if activate:
        model_persister_export.activate(version)
    return version
