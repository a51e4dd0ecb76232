"""The web service: a Flask app built from a config by :func:`create_app`.

Routes: every predict service (``/predict`` by default), ``/alive``,
``/list``, whatever the ``flask_add_url_rules`` entry adds (``/fit``,
``/update-model-cache``, ``/activate``, ``/delete``), the pipelines routes and
the dashboard (``/dashboard``, and ``/`` unless another route has it). Views find their components on
``app.extensions["pipeforge"]``; there is no module-level app or config.
Every error, from a view or from routing, is answered with the same JSON
body; unexpected faults are logged with their traceback and answered
without internals.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from typing import Any, NamedTuple

from .. import __version__, web
from ..errors import ConfigError, JobQueueError, PersistenceError, RequestError
from ..factory import decorate, resolve_dotted_name
from ..interfaces import Background
from ..interfaces import PredictService as PredictServiceInterface
from ..jobs.queue import (
    JobQueue,
    JobRunner,
    fit_job,
    job_queue,
    model_caches,
    refresh_model_caches,
    require,
    unique,
)
from ..web import error_body, json_response
from .fast_routes import install_fast_routes
from .fields import _to_bool, _to_float, _to_int
from .metrics import register_metrics
from .openapi import register_openapi
from .predict_service import PredictService

__all__ = [
    "create_app",
    "PredictService",
    "UrlRule",
    "add_url_rule",
    "alive",
    "list_models",
    "fit",
    "update_model_cache",
    "activate",
    "delete",
]

logger = logging.getLogger(__name__)


class UrlRule(NamedTuple):
    """A route to add to the app; built by :func:`add_url_rule` in a config."""

    rule: str
    endpoint: str | None
    view_func: Any
    options: dict


def add_url_rule(rule: str, endpoint: str | None = None, view_func=None, **options) -> UrlRule:
    """Describe a route for the ``flask_add_url_rules`` config entry.

    The config is built before the app, so this only records the route;
    :func:`create_app` adds it. ``view_func`` may be a dotted name
    (``pipeforge.server.fit``). ``decorator_list_name`` in ``options``
    overrides the decorator list wrapped around the view.
    """
    return UrlRule(rule, endpoint, view_func, dict(options))


class _State:
    """What the views of one app need: the config and its shared helpers."""

    def __init__(self, config, process_store, jobs: JobQueue):
        self.config = config
        self.process_store = process_store
        self.jobs = jobs
        self.service_metadata = dict(config.get("service_metadata") or {})
        self.model_persister = config.get("model_persister")
        self.services: list[tuple[str, Any]] = []
        self.views: dict[str, Any] = {}  # endpoint -> undecorated view of flask_add_url_rules
        self.stoppers: list = []  # called by stop(): the app's own threads (metrics)
        self.background_pid: int | None = None
        self.extra_background: list = []  # e.g. the pipelines' op-store follower
        self._process = None

    def memory_usage(self) -> int:
        import psutil

        if self._process is None or self._process.pid != os.getpid():
            self._process = psutil.Process()
        return round(self._process.memory_info().rss / 2**20)

    def start_background(self) -> None:
        """Start the config's background components (model cache refresh, scheduled data)."""
        if hasattr(self.config, "start"):
            self.config.start()
        else:
            for component in unique(self.config.values()):
                if isinstance(component, Background):
                    component.start()
        for component in self.extra_background:
            component.start()
        self.background_pid = os.getpid()

    def stop(self) -> None:
        """Stop the background components and the job pool (for tests and shutdown)."""
        self.jobs.shutdown(wait=False)
        for stop in self.stoppers:
            stop()
        if self.background_pid is None:
            return
        for component in self.extra_background:
            component.stop()
        if hasattr(self.config, "stop"):
            self.config.stop()
        else:
            for component in unique(self.config.values()):
                if isinstance(component, Background):
                    component.stop()
        self.background_pid = None


def _restart_after_fork(ref) -> None:
    # A forked server worker (gunicorn --preload) has no threads: start them again.
    state = ref()
    if state is not None and state.background_pid not in (None, os.getpid()):
        try:
            state.start_background()
        except Exception:
            logger.exception("starting background components in the forked worker failed")


def _state():
    from flask import current_app

    return current_app.extensions["pipeforge"]


def _ok_metadata(state) -> dict:
    return web.ok_metadata(state.service_metadata)


# -- the views -----------------------------------------------------------------


def answer_predict(service, state, request):
    """Answer one request to a predict service with the served model; never raises.

    Shared by the Flask view and the fast path in front of Flask
    (:mod:`pipeforge.fast_routes`), so both read the model and check its fit alike.
    """
    try:
        model = state.model_persister.read()
        check = getattr(service, "check_model", None)
        if check is not None:
            check(model)
    except Exception as exc:
        return service.response_from_exception(exc)
    return service(model, request)


def _predict_view(service, state):
    from flask import request

    def predict():
        return answer_predict(service, state, request._get_current_object())

    return predict


def alive():
    """Health check: versions, memory, the served model, jobs; 503 until ready."""
    state = _state()
    store = state.process_store
    process_metadata = dict(store.get("process_metadata") or {})
    try:
        process_metadata["jobs"] = state.jobs.snapshot()
    except JobQueueError as exc:  # predictions still work without the job queue
        logger.warning("/alive cannot list the jobs: %s", exc)
        process_metadata["jobs"] = {}
        process_metadata["jobs_error"] = str(exc)
    body = {
        "pipeforge_version": __version__,
        "service_metadata": state.service_metadata,
        "memory_usage": state.memory_usage(),
        "model": {"updated": None, "metadata": None},
        "process_metadata": process_metadata,
    }
    problems = []
    if state.model_persister is not None:
        try:
            model = state.model_persister.read()
        except (PersistenceError, LookupError) as exc:
            problems.append(f"no model available yet: {exc}")
        except Exception:
            logger.exception("/alive could not read the model")
            problems.append("the model could not be read; see the server log")
        else:
            body["model"] = {
                "updated": _model_updated(store, model),
                "metadata": dict(getattr(model, "__metadata__", None) or {}),
            }
            problems.extend(_misfits(state.services, model))
    required = (state.config.get("alive") or {}).get("process_store_required") or []
    missing = (
        store.missing(required)
        if hasattr(store, "missing")
        else [name for name in required if name not in store]
    )
    if missing:
        problems.append(f"waiting for process store entries: {', '.join(missing)}")
    if problems:
        body.update(error_body(state.service_metadata, "; ".join(problems)))
        return json_response(body, 503)
    return json_response(body)


def _misfits(services, model) -> list[str]:
    """Why predict services cannot use ``model`` (their ``check_model``), for ``/alive``."""
    problems = []
    for _, service in services:
        check = getattr(service, "check_model", None)
        if check is None:
            continue
        try:
            check(model)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def _model_updated(store, model) -> str | None:
    """When the served model was put into the process store (the model cache)."""
    mtime = getattr(store, "mtime", {})
    if store.get("model") is model and "model" in mtime:
        return mtime["model"].isoformat()
    return None


def job_view(job_id: str):
    """``GET /jobs/<job_id>``: one job's record (with a job queue: from any process or host)."""
    from flask import current_app
    from werkzeug.exceptions import NotFound

    record = current_app.extensions["pipeforge"].jobs.get(job_id)
    if record is None:
        raise NotFound(f"unknown job {job_id!r} (finished jobs are kept for a limited time)")
    return json_response(record)


def list_models():
    """``/list``: the stored models' metadata and the store's properties."""
    state = _state()
    persister = require(state.config, "model_persister")
    return json_response(
        {"models": persister.list_models(), "properties": persister.list_properties()}
    )


def _flag(values, name: str, default: bool) -> bool:
    return default if name not in values else _to_bool(name, values[name])


def fit():
    """``/fit``: fit the configured model in a background job; answers the job id."""
    from flask import request

    state = _state()
    values = request.values
    persist = _flag(values, "persist", True)
    activate = _flag(values, "activate", persist)
    evaluate = _flag(values, "evaluate", False)
    better = values.get("persist_if_better_than")
    better = None if better is None else _to_float("persist_if_better_than", better)
    for key in ("dataset_loader_train", "model", "model_persister"):
        require(state.config, key)
    job_id = state.jobs.enqueue(
        fit_job,
        state.config,
        name="fit",
        persist=persist,
        activate=activate,
        evaluate=evaluate,
        persist_if_better_than=better,
    )
    return json_response({"job_id": job_id})


def update_model_cache():
    """``/update-model-cache``: refresh this process's model cache in a background job."""
    state = _state()
    if not model_caches(state.config):
        return json_response(
            error_body(state.service_metadata, "no model cache is configured to update"), 503
        )
    job_id = state.jobs.enqueue(refresh_model_caches, state.config, name="update_model_cache")
    return json_response({"job_id": job_id})


def _model_version_param() -> int:
    """``model_version`` from the query, a form or a JSON object body."""
    from flask import request

    raw = request.values.get("model_version")
    if raw is None and request.is_json:
        payload = web.read_json(request, expect=dict, default={})
        raw = payload.get("model_version")
    if raw is None:
        raise RequestError("missing request parameter 'model_version'")
    return _to_int("model_version", raw)


def activate():
    """``/activate``: make ``model_version`` the active model and refresh the cache."""
    state = _state()
    version = _model_version_param()
    require(state.config, "model_persister").activate(version)
    refresh_model_caches(state.config)
    return json_response({"model_version": version, "metadata": _ok_metadata(state)})


def delete():
    """``/delete``: delete the stored model ``model_version`` (as ``pf-admin delete``)."""
    state = _state()
    version = _model_version_param()
    require(state.config, "model_persister").delete(version)
    return json_response({"model_version": version, "metadata": _ok_metadata(state)})


_VIEW_DECORATORS = {
    fit: "fit_decorators",
    update_model_cache: "update_model_cache_decorators",
    activate: "activate_decorators",
    delete: "delete_decorators",
}


# -- the app -------------------------------------------------------------------


def _predict_services(config) -> list[tuple[str, Any]]:
    services = []
    for key, value in config.items():
        if isinstance(value, PredictServiceInterface):
            services.append((key, value))
        elif isinstance(key, str) and key.startswith("predict_service"):
            if not callable(value) or not hasattr(value, "response_from_exception"):
                raise ConfigError(
                    f"expected a PredictService (e.g. __factory__: pipeforge.server.PredictService); "
                    f"got {type(value).__name__}",
                    source=", ".join(getattr(config, "sources", [])) or None,
                    key=key,
                )
            services.append((key, value))
    return services


def _add_rules(app, config, views: dict) -> None:
    entries = config.get("flask_add_url_rules") or []
    for index, entry in enumerate(entries):
        where = f"flask_add_url_rules[{index}]"
        if isinstance(entry, dict):
            try:
                entry = add_url_rule(**entry)
            except TypeError as exc:
                raise ConfigError(f"bad route: {exc}", key=where) from None
        if not isinstance(entry, UrlRule):
            raise ConfigError(
                f"expected a route made with __factory__: pipeforge.server.add_url_rule; "
                f"got {type(entry).__name__}",
                key=where,
            )
        view = entry.view_func
        if isinstance(view, str):
            view = resolve_dotted_name(view)
        if not callable(view):
            raise ConfigError(f"view_func must be a function; got {view!r}", key=where)
        options = dict(entry.options)
        list_name = options.pop("decorator_list_name", _VIEW_DECORATORS.get(view))
        endpoint = entry.endpoint or getattr(view, "__name__", None) or entry.rule
        if endpoint in app.view_functions:
            endpoint = f"{endpoint}:{entry.rule}"
        wrapped = decorate(view, config, list_name) if list_name else view
        app.add_url_rule(entry.rule, endpoint=endpoint, view_func=wrapped, **options)
        views[endpoint] = view


def _announce_to_batchers(app, services) -> None:
    """Tell batching services of each request as it enters the app.

    A leader of a batch waits for requests that are announced but not queued
    yet; announcing them at the door (not at the predict view) lets it see
    every request this worker's threads are working on.
    """
    batchers = [b for _, s in services if (b := getattr(s, "batcher", None)) is not None]
    if not batchers:
        return
    inner = app.wsgi_app

    def announcing(environ, start_response):
        threaded = bool(environ.get("wsgi.multithread"))
        announced = [b for b in batchers if b.arrive(threaded)]
        try:
            return inner(environ, start_response)
        finally:
            for batcher in announced:
                batcher.leave()

    app.wsgi_app = announcing


def _add_pipelines(app, config):
    if "pipelines" not in config:
        return None
    try:
        from ..pipelines import http
    except ModuleNotFoundError as exc:
        if exc.name not in ("pipeforge.pipelines", "pipeforge.pipelines.http"):
            raise
        logger.warning("the config has 'pipelines' but pipeforge.pipelines.http is not available")
        return None
    return http.register_routes(app, config)


def _add_online(app, config) -> None:
    if "online_models" in config or "online" in config:
        from ..online import http as online_http

        online_http.register_routes(app, config)


def _add_dashboard(app, config) -> None:
    """The dashboard comes last, so that it takes ``/`` only when no other route has."""
    from .dashboard import register_dashboard

    register_dashboard(app, config)


def create_app(config, *, start_background: bool = False, flask_app=None):
    """Build the Flask app serving ``config``.

    With ``start_background`` (the WSGI entry point and ``pf-devserver``),
    background components such as the model cache's refresh thread start now,
    and again in each process forked from this one (``gunicorn --preload``).
    ``flask_app`` is a fresh ``Flask`` object to set up instead of a new one
    (Palladium's ``palladium.server.app``, which user modules may have
    decorated already).
    """
    from flask import Flask

    from ..process_store import ProcessStore

    store = getattr(config, "process_store", None)
    if store is None:
        store = ProcessStore()
    state = _State(config, store, job_queue(config) or JobRunner(store))
    app = Flask("pipeforge") if flask_app is None else flask_app
    app.config["PIPEFORGE"] = config
    app.config["MAX_CONTENT_LENGTH"] = 16 * 2**20
    app.extensions["pipeforge"] = state

    services = state.services = _predict_services(config)
    if services and state.model_persister is None:
        require(config, "model_persister")
    seen = {}
    for key, service in services:
        if hasattr(service, "initialize_component"):
            service.initialize_component(config)
        entry_point = getattr(service, "entry_point", "/predict")
        if entry_point in seen:
            raise ConfigError(
                f"entry point {entry_point!r} is used by {seen[entry_point]!r} already", key=key
            )
        seen[entry_point] = key
        list_name = getattr(service, "decorator_list_name", "predict_decorators")
        view = decorate(_predict_view(service, state), config, list_name)
        app.add_url_rule(
            entry_point, endpoint=f"predict:{key}", view_func=view, methods=["GET", "POST"]
        )
    app.add_url_rule("/alive", view_func=decorate(alive, config, "alive_decorators"))
    app.add_url_rule(
        "/list", endpoint="list", view_func=decorate(list_models, config, "list_decorators")
    )
    app.add_url_rule(
        "/jobs/<job_id>", endpoint="job", view_func=decorate(job_view, config, "alive_decorators")
    )
    _add_rules(app, config, state.views)
    pipelines = _add_pipelines(app, config)
    if pipelines is not None:
        state.extra_background.append(pipelines.sync)
    _add_online(app, config)
    register_openapi(app, config)
    register_metrics(app, config, state)
    _add_dashboard(app, config)
    _announce_to_batchers(app, services)
    install_fast_routes(app, config)

    web.install_error_handlers(app, state.service_metadata)

    if start_background:
        state.start_background()
        os.register_at_fork(
            after_in_child=functools.partial(_restart_after_fork, weakref.ref(state))
        )
    return app
