"""The hot routes (``/predict``, the online API) answered before Flask's request machinery.

A predict request costs pipeforge a few tens of microseconds and the model
call about a hundred; Flask's request context, routing, signals and response
processing add about fifty more (``bench/serve.py``, in-process). When nothing
can expect Flask around a hot route, a thin WSGI layer in front of the app
answers it instead: the same service calls, the same JSON reading and error
answers from :mod:`pipeforge.web`, the same request counting for ``/metrics``,
the same 16 MiB body limit. A route stays with Flask when a decorator list of
the config wraps it, when its service is a subclass (which may reach for
``flask.request``), or when the app carries request hooks of the user's (a
CORS extension, a decorated Palladium ``app``). Every other request goes
through Flask as before.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

__all__ = ["install_fast_routes", "PIPEFORGE_HOOK", "Handler"]

#: set on the app hooks pipeforge itself registers, which the fast path does the work of
PIPEFORGE_HOOK = "_pipeforge_hook"

#: answers a request (a werkzeug ``Request``) with a response; never raises
Handler = Callable[[object], object]


def install_fast_routes(app, config) -> list[str]:
    """Put the fast path in front of ``app`` for the routes that allow it; their paths."""
    if _user_hooks(app):
        return []
    routes: dict[tuple[str, str], Handler] = {}
    routes.update(_predict_routes(app, config))
    if "pipeforge_online" in app.extensions:
        from ..online.fast_routes import online_routes

        routes.update(online_routes(app, config))
    if not routes:
        return []
    _wrap(app, routes)
    return sorted({path for _, path in routes})


def _wrap(app, routes: dict[tuple[str, str], Handler]) -> None:
    from werkzeug.wrappers import Request

    metrics = app.extensions.get("pipeforge_metrics")
    limit = app.config.get("MAX_CONTENT_LENGTH")
    inner = app.wsgi_app
    clock = time.perf_counter

    def fast_first(environ, start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        handler = routes.get((method, path))
        if handler is None:
            return inner(environ, start_response)
        started = clock()
        request = Request(environ)
        request.max_content_length = limit
        response = handler(request)
        if metrics is not None:
            metrics.request_done(path, method, response.status_code, clock() - started)
        return response(environ, start_response)

    app.wsgi_app = fast_first


def _predict_routes(app, config) -> dict[tuple[str, str], Handler]:
    from .app import answer_predict
    from .predict_service import PredictService

    state = app.extensions["pipeforge"]
    routes = {}
    for _, service in state.services:
        list_name = getattr(service, "decorator_list_name", "predict_decorators")
        if type(service) is not PredictService or config.get(list_name):
            continue
        for method in ("GET", "POST"):
            routes[method, service.entry_point] = functools.partial(answer_predict, service, state)
    return routes


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
