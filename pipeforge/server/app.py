"""The web service's app: a Flask app assembled from a config by :func:`create_app`.

Routes: every predict service (``/predict`` by default), ``/alive``,
``/list``, ``/jobs/<job_id>``, whatever the ``flask_add_url_rules`` entry adds
(``/fit``, ``/update-model-cache``, ``/activate``, ``/delete``: see
:mod:`.routes`), the pipelines and online-learning routes, ``/openapi.json``
and ``/docs``, ``/metrics`` and the dashboard (``/dashboard``, and ``/``
unless another route has it). The views (:mod:`.views`) find their
components on ``app.extensions["pipeforge"]`` (:mod:`.lifecycle`); there is
no module-level app or config. Every request enters through one front door
(:mod:`.front_door`). Every error, from a view or from routing, is answered
with the same JSON body; unexpected faults are logged with their traceback
and answered without internals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import guards, web
from ..errors import ConfigError
from ..factory import decorate
from ..interfaces import PredictService as PredictServiceInterface
from ..jobs import JobRunner, job_queue, require
from ..release.drift import monitor_for
from .feedback import register_feedback
from .front_door import BODY_LIMIT, HotRoutes, install_front_door
from .inference_protocol import register_inference_protocol
from .lifecycle import AppState, run_background
from .metrics import register_metrics
from .openapi import register_openapi
from .predict_service import PredictService
from .release_flow import attach_release
from .release_overview import register_release_overview
from .routes import add_rules
from .views import alive, answer_predict, job_view, list_models, predict_view

if TYPE_CHECKING:
    from flask import Flask

    from ..config import Config
    from ..pipelines.http import PipelinesService

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _predict_services(config: Mapping[str, Any]) -> list[tuple[str, Any]]:
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


def _add_predict_services(app: Flask, state: AppState, hot: HotRoutes) -> None:
    """One route per predict service; offered to the front door when nothing wraps it.

    A route stays with Flask when its decorator list is set or its service is
    a subclass (which may reach for ``flask.request``).
    """
    config = state.config
    seen: dict[str, str] = {}
    for key, service in state.services:
        if hasattr(service, "initialize_component"):
            service.initialize_component(config)
        attach_release(key, service, state)
        entry_point = getattr(service, "entry_point", "/predict")
        if entry_point in seen:
            raise ConfigError(
                f"entry point {entry_point!r} is used by {seen[entry_point]!r} already", key=key
            )
        seen[entry_point] = key
        list_name = getattr(service, "decorator_list_name", "predict_decorators")
        view = decorate(predict_view(service, state), config, list_name)
        app.add_url_rule(
            entry_point, endpoint=f"predict:{key}", view_func=view, methods=["GET", "POST"]
        )
        if type(service) is PredictService and not config.get(list_name):
            for method in ("GET", "POST"):
                hot[method, entry_point] = functools.partial(answer_predict, service, state)


def _add_pipelines(app: Flask, config: Mapping[str, Any]) -> PipelinesService | None:
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


def _add_online(app: Flask, config: Config, hot: HotRoutes) -> None:
    if "online_models" in config or "online" in config:
        from ..online import http as online_http

        online_http.register_routes(app, config, hot)


def _add_dashboard(app: Flask, config: Mapping[str, Any]) -> None:
    """The dashboard comes last, so that it takes ``/`` only when no other route has."""
    from .dashboard import register_dashboard

    register_dashboard(app, config)


def _batchers(services: list[tuple[str, Any]]) -> list[Any]:
    return [b for _, s in services if (b := getattr(s, "batcher", None)) is not None]


def create_app(
    config: Config, *, start_background: bool = False, flask_app: Flask | None = None
) -> Flask:
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
    state = AppState(config, store, job_queue(config) or JobRunner(store))
    app = Flask("pipeforge") if flask_app is None else flask_app
    app.config["PIPEFORGE"] = config
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    app.extensions["pipeforge"] = state
    hot: HotRoutes = {}

    guards.security_settings(config)  # checked even when no guarded route is on
    state.services = _predict_services(config)
    if state.services and state.model_persister is None:
        require(config, "model_persister")
    _add_predict_services(app, state, hot)
    app.extensions["pipeforge_drift"] = monitor_for(config, state.model_persister)
    app.add_url_rule("/alive", view_func=decorate(alive, config, "alive_decorators"))
    app.add_url_rule(
        "/list", endpoint="list", view_func=decorate(list_models, config, "list_decorators")
    )
    app.add_url_rule(
        "/jobs/<job_id>", endpoint="job", view_func=decorate(job_view, config, "alive_decorators")
    )
    # Palladium's own app (palladium.wsgi, pld-devserver): its routes keep Palladium's form
    try:
        add_rules(app, config, state.views, palladium=app.import_name == "palladium")
    except ConfigError as exc:  # name the file that holds the routes
        raise exc.located(source=guards.source_of(config, "flask_add_url_rules")) from None
    pipelines = _add_pipelines(app, config)
    if pipelines is not None:
        state.extra_background.append(pipelines.sync)
    _add_online(app, config, hot)
    register_inference_protocol(app, state)
    register_feedback(app, state)
    register_release_overview(app, state)
    register_openapi(app, config)
    metrics = register_metrics(app, config, state)
    _add_dashboard(app, config)
    install_front_door(
        app,
        hot,
        metrics=metrics,
        batchers=_batchers(state.services),
        service_metadata=state.service_metadata,
    )

    web.install_error_handlers(app, state.service_metadata)

    if start_background:
        run_background(state)
    return app
