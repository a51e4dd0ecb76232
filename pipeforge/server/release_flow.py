"""One ``/predict`` request of a service with release settings (docs/releasing.md).

A predict service with a ``model_alias``, a ``traffic`` split,
``alias_from_request``, a ``shadow`` or a ``prediction_log`` is answered
here instead of by the service alone (:func:`.views.answer_predict` checks
one attribute, ``release_flow``; a service without those settings never
gets one, and its path is what it always was):

1. the request id: the ``X-Request-ID`` header (up to 128 visible ASCII
   characters), or a new one (a UUID's 32 hex digits); it is returned in
   the ``X-Request-ID`` header of every answer, errors included;
2. the alias: the one the request asks for, the service's, or its canary
   arm (:mod:`pipeforge.release.routing`);
3. the alias's model from the model cache (every alias the services use is
   held there, :meth:`~pipeforge.persistence.CachedUpdatePersister.read_alias`);
4. :meth:`PredictService.parse`, :meth:`PredictService.call_model`, and
   the answer, whose ``metadata`` adds ``model_version`` and ``model_alias``;
5. the answered request goes to the service's sink (the prediction log and
   the shadow, :func:`pipeforge.release.recording.sink_for`), which queues
   it and returns at once.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import web
from ..errors import RequestError
from ..json_codec import dumpb
from ..lean import Answer, LeanRequest
from ..release import Answered
from ..release.aliases import ACTIVE, read_alias
from ..release.routing import Routing, routing_for
from .fields import pairs
from .predict_service import label_rows

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.wrappers import Request

    from .lifecycle import AppState

__all__ = ["ReleaseFlow", "attach_release", "REQUEST_ID_HEADER"]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[!-~]{1,128}")


def _sink_for(key: str, service: Any, config: Mapping[str, Any], persister: Any) -> Any:
    """The service's answer sink (prediction log, shadow), or ``None``."""
    from ..release.recording import sink_for

    return sink_for(key, service, config, persister)


def _shadow_alias(service: Any) -> str | None:
    shadow = getattr(service, "shadow", None)
    alias = shadow.get("alias") if isinstance(shadow, Mapping) else None
    return alias if isinstance(alias, str) else None


class ReleaseFlow:
    """Answers the requests of one predict service that has release settings."""

    def __init__(
        self, service: Any, state: AppState, routing: Routing | None, sink: Any = None
    ) -> None:
        self.service = service
        self.state = state
        self.routing = routing
        self.sink = sink
        self.names = [name for name, _ in pairs(getattr(service, "mapping", None), "mapping")]

    def _properties(self) -> Mapping[str, Any] | None:
        """The store's properties for the routing: the model cache's copy, or read now."""
        persister = self.state.model_persister
        cached = getattr(persister, "cached_properties", None)
        if callable(cached):
            return cached()
        return persister.list_properties()

    def answer(self, request: Request) -> Response:
        """Answer ``request``; never raises (errors become the JSON error body)."""
        started = time.perf_counter()
        service = self.service
        request_id = request.headers.get(REQUEST_ID_HEADER)
        try:
            if request_id is None:
                request_id = uuid.uuid4().hex
            elif not _REQUEST_ID.fullmatch(request_id):
                request_id = None
                raise RequestError(f"{REQUEST_ID_HEADER} must be 1 to 128 visible ASCII characters")
            alias = ACTIVE
            if self.routing is not None:
                # the stored split and which aliases are set (None before the first refresh)
                properties = self._properties() if self.routing.traffic is not None else None
                alias, _ = self.routing.pick(request, properties)
            model = read_alias(self.state.model_persister, alias)
            check = getattr(service, "check_model", None)
            if check is not None:
                check(model)
            inputs = service.parse(model, request)
            y_pred = service.call_model(model, inputs.X, inputs.params)
            if getattr(service, "predict_proba", False):
                y_pred = label_rows(model, y_pred)
            body = service.answer_body(y_pred, inputs.single)
            result = body["result"]
            version = (getattr(model, "__metadata__", None) or {}).get("version")
            body["metadata"].update(model_version=version, model_alias=alias)
            if type(request) is LeanRequest:  # the front door's hot route: a prebuilt head
                answer = dumpb(body, numeric_arrays=True)
                response = Answer(answer, extra=[(REQUEST_ID_HEADER, request_id)])
            else:
                response = web.json_response(body)
                response.headers[REQUEST_ID_HEADER] = request_id
        except Exception as exc:
            response = service.response_from_exception(exc)
            if request_id is not None:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        if self.sink is not None:
            self._record(request_id, alias, version, inputs, result, started)
        return response

    def _record(
        self, request_id: str, alias: str, version: Any, inputs: Any, result: Any, started: float
    ) -> None:
        try:
            self.sink.answered(
                Answered(
                    request_id=request_id,
                    service=self.routing.entry_point
                    if self.routing
                    else getattr(self.service, "entry_point", "/predict"),
                    version=version,
                    alias=None if alias == ACTIVE else alias,
                    X=inputs.X,
                    names=self.names,
                    output=result,
                    single=inputs.single,
                    latency=time.perf_counter() - started,
                    time=time.time(),
                )
            )
        except Exception:  # the answer is given: recording it must not fail the request
            logger.exception("recording the answer to request %s failed", request_id)


def attach_release(key: str, service: Any, state: AppState) -> ReleaseFlow | None:
    """Give ``service`` its :class:`ReleaseFlow` (as ``service.release_flow``) if it needs one.

    Checks the release parameters (a :class:`~pipeforge.errors.ConfigError`
    naming ``key`` and the parameter), and tells the model cache which
    aliases to hold.
    """
    cycle = ("parse", "call_model", "answer_body")  # PredictService's public cycle
    if not all(callable(getattr(service, name, None)) for name in cycle):
        return None
    config = state.config
    routing = routing_for(key, service, config)
    sink = _sink_for(key, service, config, state.model_persister)
    if routing is None and sink is None:
        return None
    persister = state.model_persister
    serve = getattr(persister, "serve_aliases", None)
    if callable(serve):
        names = set(routing.served()) if routing is not None else set()
        shadow = _shadow_alias(service)
        if shadow:
            names.add(shadow)
        every = routing is not None and routing.from_request and routing.allowed is None
        serve(names, every=every, traffic=routing is not None and routing.traffic is not None)
    flow = ReleaseFlow(service, state, routing, sink)
    service.release_flow = flow
    return flow
