"""chantilly's HTTP API on pipeforge's app: ``/api/*`` routes and server-sent event streams.

Registered by :func:`pipeforge.server.create_app` when the config has
``online_models`` or ``online``. Every route is wrapped in the config's
``online_decorators``; the routes that change what is served
(``POST /api/init``, ``POST /api/model``, ``DELETE /api/model/<name>``)
also in ``online_admin_decorators``. The JSON bodies are chantilly's and are
listed in ``docs/online-learning.md``; requests are read and answers and
errors written by :mod:`pipeforge.web`, the app's one HTTP boundary.
"""

from __future__ import annotations

import json
import logging
import time

from .. import web
from ..factory import decorate
from ..web import json_response
from .config import read_settings
from .service import OnlineService

__all__ = ["register_routes", "sse_message"]

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


def init():
    from flask import request

    service = _service()
    if request.method == "GET":
        return json_response(service.get_init())
    return json_response(service.init(_body()), 201)


def predict():
    started = time.perf_counter_ns()
    answer, status = _service().predict(_body(), started)
    return json_response(answer, status)


def learn():
    started = time.perf_counter_ns()
    return json_response(_service().learn(_body(), started), 201)


def metrics():
    from flask import request

    return json_response(_service().metrics(request.args.get("model")))


def stats():
    return json_response(_service().stats())


def models():
    return json_response(_service().models())


def upload(name: str | None = None):
    from flask import request

    service = _service()
    service.check_upload()
    answer = service.upload(request.get_data(cache=False), name, request.args.get("flavor"))
    return json_response(answer, 201)


def download(name: str | None = None):
    from flask import Response

    blob = _service().download(name)
    filename = f"{name or 'model'}.pkl"
    return Response(
        blob,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def delete(name: str):
    from flask import Response

    _service().delete(name)
    return Response(status=204)


def _stream(kinds: tuple[str, ...], chantilly_metrics: bool):
    from flask import Response, request

    service = _service()
    service.ensure_ready()
    store = service.store
    store.listen()
    cursor = request.headers.get("Last-Event-ID") or store.last_event_id()
    wanted = request.args.get("model")
    seconds = service.settings.stream_seconds

    def generate():
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
    return Response(generate(), mimetype="text/event-stream", headers=headers)


def stream_metrics():
    return _stream(("metrics",), chantilly_metrics=True)


def stream_events():
    return _stream(("predict", "learn"), chantilly_metrics=False)


_ROUTES = (
    # rule, view, methods, admin
    ("/init", init, ["GET"], False),
    ("/init", init, ["POST"], True),
    ("/predict", predict, ["POST"], False),
    ("/learn", learn, ["POST"], False),
    ("/metrics", metrics, ["GET"], False),
    ("/stats", stats, ["GET"], False),
    ("/models", models, ["GET"], False),
    ("/model", download, ["GET"], False),
    ("/model/<name>", download, ["GET"], False),
    ("/model", upload, ["POST"], True),
    ("/model/<name>", upload, ["POST"], True),
    ("/model/<name>", delete, ["DELETE"], True),
    ("/stream/metrics", stream_metrics, ["GET"], False),
    ("/stream/events", stream_events, ["GET"], False),
)


def register_routes(app, config) -> OnlineService:
    """Add the ``/api`` routes for the config's online models to ``app``."""
    from flask import Blueprint

    service = OnlineService(read_settings(config))
    app.extensions["pipeforge_online"] = service
    blueprint = Blueprint("online", __name__, url_prefix="/api")
    for rule, view, methods, admin in _ROUTES:
        wrapped = decorate(view, config, "online_admin_decorators") if admin else view
        wrapped = decorate(wrapped, config, "online_decorators")
        endpoint = f"{view.__name__}_{methods[0].lower()}{'_named' if '<' in rule else ''}"
        blueprint.add_url_rule(rule, endpoint=endpoint, view_func=wrapped, methods=methods)
    app.register_blueprint(blueprint)  # errors: the app's handlers (pipeforge.web), by http_status
    return service
