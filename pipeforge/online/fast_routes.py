"""``POST /api/predict`` and ``POST /api/learn`` answered before Flask's request machinery.

These two routes are called once per event of a stream, and the online
model itself needs a few microseconds; Flask's request context, routing,
signals and response processing were a third of what pipeforge spent on a
learn (``bench/online.py``, in-process profile). With no
``online_decorators`` and no request hooks of the user's on the app, they
are answered by a thin WSGI layer in front of the app instead: the same
:class:`~pipeforge.online.service.OnlineService` calls, the same JSON reading
and error answers from :mod:`pipeforge.web`, the same request counting for
``/metrics``. Every other request, and these two whenever a decorator or a
hook could expect Flask's ``request``, goes through Flask as before.
"""

from __future__ import annotations

import time

from .. import web

__all__ = ["install_fast_routes", "PIPEFORGE_HOOK"]

#: set on the app hooks pipeforge itself registers, which the fast path does the work of
PIPEFORGE_HOOK = "_pipeforge_hook"


def _predict(service, body, started):
    return service.predict(body, started)


def _learn(service, body, started):
    return service.learn(body, started), 201


_HANDLERS = {"/api/predict": _predict, "/api/learn": _learn}


def install_fast_routes(app, config) -> bool:
    """Put the fast path in front of ``app`` if nothing needs Flask there; whether it did."""
    service = app.extensions.get("pipeforge_online")
    if service is None or config.get("online_decorators") or _user_hooks(app):
        return False
    from werkzeug.wrappers import Request

    metrics = app.extensions.get("pipeforge_metrics")
    metadata = app.extensions["pipeforge"].service_metadata
    limit = app.config.get("MAX_CONTENT_LENGTH")
    inner = app.wsgi_app

    def online_first(environ, start_response):
        handler = _HANDLERS.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return inner(environ, start_response)
        started = time.perf_counter_ns()
        request = Request(environ)
        request.max_content_length = limit
        try:
            answer, status = handler(service, web.read_json(request, expect=dict), started)
            response = web.json_response(answer, status)
        except Exception as exc:
            response = web.error_response(exc, metadata)
        if metrics is not None:
            seconds = (time.perf_counter_ns() - started) / 1e9
            metrics.request_done(environ["PATH_INFO"], "POST", response.status_code, seconds)
        return response(environ, start_response)

    app.wsgi_app = online_first
    return True


def _user_hooks(app) -> bool:
    """Whether the app has request hooks that pipeforge did not register (a user's CORS, say)."""
    registries = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.url_value_preprocessors,
    )
    return any(
        not getattr(hook, PIPEFORGE_HOOK, False)
        for registry in registries
        for hooks in registry.values()
        for hook in hooks
    )
