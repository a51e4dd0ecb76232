"""``POST /api/predict`` and ``POST /api/learn`` for :mod:`pipeforge.fast_routes`.

These two routes are called once per event of a stream, and the online
model itself needs a few microseconds; Flask's request machinery was a third
of what pipeforge spent on a learn (``bench/online.py``, in-process profile).
They are answered in front of Flask unless ``online_decorators`` is set (or
the app has request hooks of the user's; see :mod:`pipeforge.fast_routes`).
"""

from __future__ import annotations

import time

from .. import web

__all__ = ["online_routes"]


def _predict(service, body, started):
    return service.predict(body, started)


def _learn(service, body, started):
    return service.learn(body, started), 201


def online_routes(app, config) -> dict:
    """``(method, path) -> handler`` of the online API's hot routes, or none if decorated."""
    service = app.extensions.get("pipeforge_online")
    if service is None or config.get("online_decorators"):
        return {}
    metadata = app.extensions["pipeforge"].service_metadata

    def route(call):
        def handler(request):
            started = time.perf_counter_ns()
            try:
                answer, status = call(service, web.read_json(request, expect=dict), started)
                return web.json_response(answer, status)
            except Exception as exc:
                return web.error_response(exc, metadata)

        return handler

    return {("POST", "/api/predict"): route(_predict), ("POST", "/api/learn"): route(_learn)}
