"""Palladium's process-wide helpers, for user code written against Palladium.

Palladium kept one Flask app, one config and one process store per process
in module globals, and user modules reach for them: ``from palladium.server
import app``, ``from palladium.util import process_store``,
``@args_from_config``. pipeforge passes these things around explicitly;
this module is the one place that offers them the old way, each built on
first use, for the names in :mod:`pipeforge.palladium_names`. Outside this
package, pipeforge's own code never imports it; the ``pld-*`` commands use
its app and its listing (:func:`print_listing`).
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PipeforgeError
from ..interfaces import Model as _PipeforgeModel
from ..moved_modules import moved_name_getattr

if TYPE_CHECKING:
    from flask import Flask, Response

__all__ = [
    "shared_app",
    "wsgi_app",
    "process_store",
    "args_from_config",
    "PluggableDecorator",
    "get_metadata",
    "apply_kwargs",
    "timer",
    "session_scope",
    "memory_usage_psutil",
    "run_job",
    "make_ujson_response",
    "CrossValidationGenerator",
    "logger",
]

logger = logging.getLogger("palladium")  # Palladium's logger name: users' logging configs use it

_lock = threading.RLock()
_shared: dict = {}


# -- the Flask app and the config of this process ------------------------------------


def shared_app() -> Flask:
    """``palladium.server.app``: the one Flask object of this process, made on first use.

    User modules may register routes or extensions on it while the config
    loads; :func:`wsgi_app` and ``pld-devserver`` then build the service on it.
    """
    with _lock:
        if "app" not in _shared:
            from flask import Flask

            _shared["app"] = Flask("palladium")
        return _shared["app"]


def wsgi_app() -> Flask:
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


def args_from_config(func: Callable[..., Any]) -> Callable[..., Any]:
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

    def __init__(self, decorator_config_name: str) -> None:
        self.decorator_config_name = decorator_config_name

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        wrapped: list[Callable[..., Any]] = []

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


def apply_kwargs(func: Callable[..., Any], **kwargs: Any) -> Any:
    """Call ``func`` with those of ``kwargs`` it has parameters for."""
    accepted = inspect.signature(func).parameters
    return func(**{name: value for name, value in kwargs.items() if name in accepted})


@contextlib.contextmanager
def timer(
    log: Callable[[str], Any] | None = None, message: str | None = None
) -> Iterator[dict[str, float]]:
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
def session_scope(session: Any) -> Iterator[Any]:
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


def run_job(func: Callable[..., Any], **params: Any) -> tuple[threading.Thread, str]:
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


def make_ujson_response(obj: Any, status_code: int = 200) -> Response:
    """A JSON Flask response (Palladium encoded with ujson; the output is the same JSON)."""
    from ..server.predict_service import json_response

    return json_response(obj, status_code)


_moved_name = moved_name_getattr(__name__)


# -- Palladium's interfaces that pipeforge does not have as such ---------------------


def __getattr__(name: str) -> Any:
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
    return _moved_name(name)  # the model functions moved to .workflow


class CrossValidationGenerator(abc.ABC):
    """Yields ``(train_indices, test_indices)`` pairs, like scikit-learn's splitters."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Yield the splits."""
