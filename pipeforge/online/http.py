"""chantilly's HTTP API on pipeforge's app: ``/api/*`` routes and server-sent event streams.

Registered by :func:`pipeforge.server.create_app` when the config has
``online_models`` or ``online``. Every route is wrapped in the config's
``online_decorators``. The routes that change what is served (``POST
/api/init``, ``POST /api/model``, ``DELETE /api/model/<name>``) or hand out
models and clients' data (``GET /api/model``, ``/api/stream/events``) are
off unless the ``online`` entry switches them on (``allow_init``, ...), and
then pass :func:`pipeforge.guards.gate`: guarded by
``online_admin_decorators`` or ``online_data_decorators``, no cross-site
writes (docs/security.md). The JSON bodies are chantilly's and are
listed in ``docs/online-learning.md``; requests are read and answers and
errors written by :mod:`pipeforge.web`, the app's one HTTP boundary.

``POST /api/predict`` and ``POST /api/learn`` are called once per event of a
stream, and the online model itself needs a few microseconds; Flask's request
machinery was a third of what pipeforge spent on a learn (``bench/online.py``,
in-process profile). So :func:`register_routes` also offers them to the app's
front door (:mod:`pipeforge.server.front_door`), which answers them without
Flask unless ``online_decorators`` is set: both ways call the same
:func:`answer_event`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import guards, web
from ..factory import decorate
from ..lean import LeanRequest, json_answer
from ..web import json_response
from .config import read_settings
from .service import OnlineService

if TYPE_CHECKING:
    from flask import Flask, Response
    from werkzeug.wrappers import Request
    from werkzeug.wrappers import Response as WSGIResponse

    from ..config import Config

__all__ = ["register_routes", "sse_message", "answer_event", "online_routes"]

#: one event call of the service: ``(service, body, started) -> (answer, status)``
EventCall = Callable[[OnlineService, dict, int], tuple[Any, int]]

logger = logging.getLogger(__name__)

_HEARTBEAT_SECONDS = 5.0


def sse_message(data: str, event: str | None = None, event_id: str | None = None) -> str:
    """One server-sent event: optional ``id:`` and ``event:`` lines, then ``data:``."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


def _service() -> OnlineService:
    from flask import current_app

    return current_app.extensions["pipeforge_online"]


def _body() -> dict:
    """The request's JSON object (400 for anything else: see :func:`pipeforge.web.read_json`)."""
    return web.read_json(expect=dict)


def _predict_event(service: OnlineService, body: dict, started: int) -> tuple[Any, int]:
    return service.predict(body, started)


def _learn_event(service: OnlineService, body: dict, started: int) -> tuple[Any, int]:
    return service.learn(body, started), 201


def answer_event(call: EventCall, service: OnlineService, request: Request) -> Response:
    """Answer ``POST /api/predict`` or ``/api/learn`` (``call``): Flask's view and the front door.

    The request's body must be a JSON object (else 400); errors are raised,
    for the app's handlers (or the front door) to answer.
    """
    started = time.perf_counter_ns()
    answer, status = call(service, web.read_json(request, expect=dict), started)
    if type(request) is LeanRequest:  # the front door's: a prebuilt head (pipeforge.lean)
        return json_answer(answer, status)
    return json_response(answer, status)


def init() -> Response:
    from flask import request

    service = _service()
    if request.method == "GET":
        return json_response(service.get_init())
    return json_response(service.init(_body()), 201)


def predict() -> Response:
    from flask import request

    return answer_event(_predict_event, _service(), request)


def learn() -> Response:
    from flask import request

    return answer_event(_learn_event, _service(), request)


def metrics() -> Response:
    from flask import request

    return json_response(_service().metrics(request.args.get("model")))


def stats() -> Response:
    return json_response(_service().stats())


def models() -> Response:
    return json_response(_service().models())


def upload(name: str | None = None) -> Response:
    from flask import request

    service = _service()
    service.check_upload()
    answer = service.upload(request.get_data(cache=False), name, request.args.get("flavor"))
    return json_response(answer, 201)


def download(name: str | None = None) -> Response:
    from flask import Response

    blob = _service().download(name)
    filename = f"{name or 'model'}.pkl"
    return Response(
        blob,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def delete(name: str) -> Response:
    from flask import Response

    _service().delete(name)
    return Response(status=204)


_ONE_AT_A_TIME = (
    "event streams need a server that answers several requests at once in each process: "
    "here every open stream would hold a whole worker, and the other routes would wait. "
    "Serve them with threads (gunicorn --worker-class gthread --threads 8 ...) or a gevent "
    "worker; see docs/online-learning.md"
)


def _one_request_at_a_time(environ: Mapping[str, Any]) -> bool:
    """Whether this process answers one request at a time (gunicorn's sync worker, a prefork server).

    The in-process test client and threaded servers answer streams.
    """
    if environ.get("wsgi.multithread"):
        return False
    return bool(environ.get("wsgi.multiprocess")) or "gunicorn.socket" in environ


def _stream(kinds: tuple[str, ...], chantilly_metrics: bool) -> Response:
    """An SSE response, unless it would starve the process (503 with the JSON error body).

    Refused on a server that answers one request at a time per process, and
    beyond ``online.max_streams`` open at once in this process.
    """
    from flask import Response, request
    from werkzeug.exceptions import ServiceUnavailable

    if _one_request_at_a_time(request.environ):
        raise ServiceUnavailable(_ONE_AT_A_TIME)
    service = _service()
    service.ensure_ready()
    seconds = service.settings.stream_seconds
    if not service.open_stream():
        raise ServiceUnavailable(
            f"{service.settings.max_streams} event streams are open in this process already "
            "(online.max_streams); try again in a few seconds",
            retry_after=int(seconds) + 1,
        )
    once = threading.Lock()

    def release() -> None:  # by the generator's end or the response's close, whichever is first
        if once.acquire(blocking=False):
            service.close_stream()

    try:
        store = service.store
        store.listen()
        cursor = request.headers.get("Last-Event-ID") or store.last_event_id()
    except BaseException:
        release()
        raise
    wanted = request.args.get("model")

    def generate() -> Iterator[str]:
        try:
            yield from events()
        finally:
            release()

    def events() -> Iterator[str]:
        nonlocal cursor
        yield "retry: 1000\n\n"
        started = last_beat = time.monotonic()
        while True:
            left = seconds - (time.monotonic() - started)
            if left <= 0:
                return
            cursor, found = store.events(cursor, timeout=min(1.0, left))
            for event_id, event in found:
                if event.kind not in kinds:
                    continue
                if chantilly_metrics:
                    data = json.loads(event.data)
                    yield sse_message(event.data, "metrics", event_id)
                    if data["model"] == (wanted or store.default()):
                        yield sse_message(json.dumps(data["metrics"]), None, event_id)
                else:
                    yield sse_message(event.data, event.kind, event_id)
            if time.monotonic() - last_beat >= _HEARTBEAT_SECONDS:
                store.listen()
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    response = Response(generate(), mimetype="text/event-stream", headers=headers)
    response.call_on_close(release)
    return response


def stream_metrics() -> Response:
    return _stream(("metrics",), chantilly_metrics=True)


def stream_events() -> Response:
    return _stream(("predict", "learn", "drift"), chantilly_metrics=False)


_PREFIX = "/api"
_ROUTES: tuple[
    tuple[str, Callable[..., Response], list[str], str | None, EventCall | None], ...
] = (
    # rule, view, methods, its name in pipeforge.guards' table (off unless switched on),
    # the event call of a hot route
    ("/init", init, ["GET"], None, None),
    ("/init", init, ["POST"], "online.init", None),
    ("/predict", predict, ["POST"], None, _predict_event),
    ("/learn", learn, ["POST"], None, _learn_event),
    ("/metrics", metrics, ["GET"], None, None),
    ("/stats", stats, ["GET"], None, None),
    ("/models", models, ["GET"], None, None),
    ("/model", download, ["GET"], "online.download", None),
    ("/model/<name>", download, ["GET"], "online.download", None),
    ("/model", upload, ["POST"], "online.upload", None),
    ("/model/<name>", upload, ["POST"], "online.upload", None),
    ("/model/<name>", delete, ["DELETE"], "online.delete", None),
    ("/stream/metrics", stream_metrics, ["GET"], None, None),
    ("/stream/events", stream_events, ["GET"], "online.events", None),
)


def online_routes(app: Flask, config: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """``(method, path) -> handler`` of the online API's routes that skip Flask (0.1's name).

    The routes are offered to the front door by :func:`register_routes`;
    this reads which of them the app's door answers.
    """
    hot = getattr(app.wsgi_app, "hot_routes", {})
    return {key: handler for key, handler in hot.items() if key[1].startswith(_PREFIX)}


def register_routes(
    app: Flask,
    config: Config,
    hot_routes: dict[tuple[str, str], Callable[[LeanRequest], WSGIResponse]] | None = None,
) -> OnlineService:
    """Add the ``/api`` routes for the config's online models to ``app``.

    ``hot_routes`` (the app's front door's) gets ``POST /api/predict`` and
    ``/api/learn`` when no decorator list wraps them.
    """
    from flask import Blueprint

    service = OnlineService(read_settings(config))
    app.extensions["pipeforge_online"] = service
    blueprint = Blueprint("online", __name__, url_prefix=_PREFIX)
    gates: dict[str, guards.Gate] = {}
    for rule, view, methods, guarded, event in _ROUTES:
        wrapped = view
        if guarded is not None:
            if not guards.switched_on(config, guarded):
                continue  # off: 404
            if guarded not in gates:
                gates[guarded] = guards.gate(config, guarded)
            wrapped = gates[guarded].wrap(view)
        wrapped = decorate(wrapped, config, "online_decorators")
        endpoint = f"{view.__name__}_{methods[0].lower()}{'_named' if '<' in rule else ''}"
        blueprint.add_url_rule(rule, endpoint=endpoint, view_func=wrapped, methods=methods)
        bare = guarded is None and not config.get("online_decorators")
        if event is not None and bare and hot_routes is not None:
            for method in methods:
                hot_routes[method, _PREFIX + rule] = functools.partial(answer_event, event, service)
    app.register_blueprint(blueprint)  # errors: the app's handlers (pipeforge.web), by http_status
    return service
