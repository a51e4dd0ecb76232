"""The protocol's REST routes on the app, when the config's ``inference_protocol`` turns them on.

==========================================================  ===========================================
route                                                       answer
==========================================================  ===========================================
``GET /v2``                                                 server metadata
``GET /v2/health/live``                                     200 while the process answers
``GET /v2/health/ready``                                    200 once every predict service has a model
                                                            it can serve (and the online store a
                                                            model, if any); else 400
``GET /v2/models/{name}[/versions/{version}]``              model metadata
``GET /v2/models/{name}[/versions/{version}]/ready``        200 when that model (version) can answer
``POST /v2/models/{name}[/versions/{version}]/infer``       an inference
==========================================================  ===========================================

Each predict service gets its own rules (``/v2/models/predict_service/...``),
wrapped in the service's decorator list, as its ``/predict``; the online
models are found by name behind ``/v2/models/<name>/...``, wrapped in
``online_decorators``; ``/v2`` and the health routes in ``alive_decorators``,
as ``/alive``. Answers and errors: :mod:`.answers`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import web
from ...errors import RequestError, UnknownVersionError
from ...factory import decorate
from ..openapi import describe_route
from ..predict_service import PredictService
from . import openapi_ops
from .answers import NotFoundError, NotReadyError, empty_answer, protocol_view
from .metadata import server_metadata
from .online_model import OnlineModels
from .service_model import ServiceModel
from .settings import read_settings
from .versions import VersionReader

if TYPE_CHECKING:
    from flask import Flask, Response

    from ..lifecycle import AppState

__all__ = ["register_inference_protocol", "BINARY_HEADER"]

logger = logging.getLogger(__name__)

#: the header of Triton's binary tensor extension (not supported: JSON tensors only)
BINARY_HEADER = "Inference-Header-Content-Length"
_PREFIX = "/v2/models"
_KINDS = (  # kind, path after the model (and version), methods
    ("metadata", "", ["GET"]),
    ("ready", "/ready", ["GET"]),
    ("infer", "/infer", ["POST"]),
)


def _body() -> dict[str, Any]:
    from flask import request

    if BINARY_HEADER in request.headers:
        raise RequestError(
            "binary tensor data is not supported: send the tensors as JSON "
            "(tritonclient: binary_data=False in InferInput.set_data_from_numpy and "
            "InferRequestedOutput)"
        )
    return web.read_json(request, expect=dict)


def _not_ready(check: Callable[[], Any], what: str) -> None:
    """Run ``check``; what keeps it from answering is a :class:`NotReadyError` (404s stay)."""
    try:
        check()
    except (NotFoundError, UnknownVersionError):
        raise
    except Exception as exc:
        status, message, _ = web.error_status(exc)
        if status == 500:
            logger.exception("%s: readiness check failed", what)
        raise NotReadyError(f"{what} is not ready: {message}") from None


class _Views:
    """The views of one app's protocol routes."""

    def __init__(self, models: dict[str, ServiceModel], online: OnlineModels | None) -> None:
        self.models = models
        self.online = online

    # -- the server --------------------------------------------------------------------

    def server(self) -> Response:
        return web.json_response(server_metadata())

    def live(self) -> Response:
        return empty_answer()

    def ready(self) -> Response:
        if not self.models and self.online is None:
            raise NotReadyError("the server serves no model")
        for model in self.models.values():
            _not_ready(functools.partial(model.model, None), f"model {model.name!r}")
        if self.online is not None:
            online = self.online

            def some_online_model() -> None:
                if not online.names():
                    raise NotReadyError("no online model has been stored yet")

            _not_ready(some_online_model, "the online store")
        return empty_answer()

    # -- one predict service -----------------------------------------------------------

    def service_view(self, model: ServiceModel, kind: str) -> Callable[..., Response]:
        def metadata(version: str | None = None) -> Response:
            return web.json_response(model.metadata(version))

        def ready(version: str | None = None) -> Response:
            _not_ready(lambda: model.model(version), f"model {model.name!r}")
            return empty_answer()

        def infer(version: str | None = None) -> Response:
            return web.json_response(model.infer(_body(), version))

        return {"metadata": metadata, "ready": ready, "infer": infer}[kind]

    # -- any other name: the online models ------------------------------------------------

    def _online(self, name: str) -> OnlineModels:
        if self.online is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise NotFoundError(f"no model named {name!r} (models: {known})")
        return self.online

    def by_name_view(self, kind: str) -> Callable[..., Response]:
        def metadata(name: str, version: str | None = None) -> Response:
            return web.json_response(self._online(name).metadata(name, version))

        def ready(name: str, version: str | None = None) -> Response:
            online = self._online(name)
            online.info(name, version)
            return empty_answer()

        def infer(name: str, version: str | None = None) -> Response:
            return web.json_response(self._online(name).infer(name, _body(), version))

        return {"metadata": metadata, "ready": ready, "infer": infer}[kind]


def register_inference_protocol(app: Flask, state: AppState) -> None:
    """Add the ``/v2`` routes to ``app`` when the config turns them on (see the module docstring).

    Call it after the predict services and the online API are set up.
    """
    config = state.config
    settings = read_settings(config, state.services)
    if not settings.enabled:
        return
    meta = state.service_metadata
    models: dict[str, ServiceModel] = {}
    versions = VersionReader(state.model_persister)
    for key, service in state.services:
        if not isinstance(service, PredictService):
            logger.warning(
                "predict service %r is not a pipeforge.server.PredictService: it is not offered "
                "over the inference protocol",
                key,
            )
            continue
        name = settings.names[key]
        models[name] = ServiceModel(name, key, service, state.model_persister, versions)
    online_service = app.extensions.get("pipeforge_online")
    online = OnlineModels(online_service) if online_service is not None else None
    views = _Views(models, online)

    def add(rule: str, endpoint: str, view: Callable[..., Any], list_name: str, **kw: Any) -> None:
        wrapped = protocol_view(decorate(view, config, list_name), meta)
        app.add_url_rule(rule, endpoint=endpoint, view_func=wrapped, **kw)

    server = "inference_protocol"
    add("/v2", f"{server}.server", views.server, "alive_decorators")
    add("/v2/health/live", f"{server}.live", views.live, "alive_decorators")
    add("/v2/health/ready", f"{server}.ready", views.ready, "alive_decorators")
    for endpoint, operation in openapi_ops.server_operations().items():
        describe_route(app, f"{server}.{endpoint}", operation)
    for name, model in models.items():
        for kind, tail, methods in _KINDS:
            view = views.service_view(model, kind)
            for versioned in (False, True):
                path = f"{_PREFIX}/{name}" + ("/versions/<version>" if versioned else "") + tail
                endpoint = f"{server}.{kind}{'_version' if versioned else ''}:{name}"
                add(path, endpoint, view, model.decorator_list_name, methods=methods)
                describe_route(app, endpoint, openapi_ops.model_operations(kind, model, versioned))
    for kind, tail, methods in _KINDS:
        view = views.by_name_view(kind)
        for versioned in (False, True):
            path = f"{_PREFIX}/<name>" + ("/versions/<version>" if versioned else "") + tail
            endpoint = f"{server}.by_name_{kind}{'_version' if versioned else ''}"
            add(path, endpoint, view, "online_decorators", methods=methods)
            describe_route(app, endpoint, openapi_ops.model_operations(kind, None, versioned))
