"""The front door: the one WSGI layer in front of Flask that every request of the app enters.

For each request the door

- announces it to the batching predict services (:mod:`.batching`): a leader
  of a batch waits for requests that are announced but not queued yet, so
  announcing them here, before anything is parsed, lets it see every request
  this worker's threads are working on;
- answers it directly when it is a hot route, or hands it to Flask;
- counts it for ``/metrics`` (route, method, status, duration), the same way
  for both: Flask hands the rule it matched and the status back through the
  environ (an ``after_request`` hook of pipeforge's), the door counts;
- gives both the same limits, answered with the JSON error body naming the
  limit (:func:`over_limits`), before either answers: a body over :data:`BODY_LIMIT` (Flask's
  ``MAX_CONTENT_LENGTH``) is a 413, refused at once when its
  ``Content-Length`` says so, or while it is read when it comes chunked
  (``Transfer-Encoding: chunked``); a query string over :data:`QUERY_LIMIT`
  is a 414. (A request line or headers over the WSGI server's own limits
  never reach the app: docs/serving.md lists the gunicorn settings.)

Hot routes
----------
A predict request costs pipeforge a few tens of microseconds and the model
call about a hundred; Flask's request context, routing, signals and response
processing add about fifty more (``bench/serve.py``, in-process). So
``/predict`` (and the online API's ``POST /api/predict`` and ``/api/learn``)
are answered by the door itself when nothing can expect Flask around them:
the same service calls, the same JSON reading and error answers from
:mod:`pipeforge.web`. The code that adds a route offers it as hot only when
its decorator list in the config is empty and, for a predict service, the
service is a plain :class:`~.predict_service.PredictService` (a subclass may
reach for ``flask.request``); the door takes none when the app carries
request hooks of the user's (a CORS extension, a decorated Palladium
``app``). Other methods (``HEAD``, ``OPTIONS``) and every other route go
through Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import web
from ..lean import LeanRequest

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.wrappers import Response

    from .batching import Batcher
    from .metrics import Metrics

__all__ = [
    "FrontDoor",
    "install_front_door",
    "install_fast_routes",
    "Handler",
    "HotRoutes",
    "BODY_LIMIT",
    "QUERY_LIMIT",
    "PIPEFORGE_HOOK",
    "body_too_large",
    "over_limits",
]

#: the largest request body either way (Flask's ``MAX_CONTENT_LENGTH``): 16 MiB
BODY_LIMIT = 16 * 2**20

#: the longest query string (bytes, as sent): longer is a 414 (send a POST body instead)
QUERY_LIMIT = 4096

#: set on the app hooks pipeforge itself registers (they are no reason to leave the hot routes)
PIPEFORGE_HOOK = "_pipeforge_hook"

#: answers a hot request (a :class:`~pipeforge.lean.LeanRequest`) with a response
#: (a werkzeug ``Response`` or a :class:`~pipeforge.lean.Answer`)
Handler = Callable[[LeanRequest], "Response"]

#: ``(method, path) -> handler`` of the routes the door may answer itself
HotRoutes = dict[tuple[str, str], Handler]

#: where Flask hands back ``(rule, method, status)`` of the request it answered
_ANSWERED = "pipeforge.answered"

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FrontDoor:
    """The WSGI callable in front of Flask's own ``wsgi_app`` (see the module docstring)."""

    def __init__(
        self,
        flask_app: _WSGIApp,
        config: Mapping[str, Any],
        hot_routes: HotRoutes,
        *,
        metrics: Metrics | None = None,
        batchers: Sequence[Batcher] = (),
        service_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.flask_app = flask_app
        self.config = config  # the app's config: MAX_CONTENT_LENGTH, read per request
        self.hot_routes = hot_routes
        self.metrics = metrics
        self.batchers = tuple(batchers)
        self.service_metadata = service_metadata

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        announced = self._announce(environ) if self.batchers else ()
        limit = self.config.get("MAX_CONTENT_LENGTH")
        if "HTTP_TRANSFER_ENCODING" in environ:
            if limit is not None and not environ.get("CONTENT_LENGTH"):
                environ["wsgi.input"] = _CappedBody(environ["wsgi.input"], limit)
        try:
            method = environ.get("REQUEST_METHOD", "")
            path = environ.get("PATH_INFO", "")
            handler = self.hot_routes.get((method, path))
            labels: tuple[str, str, int] | None
            response: Response
            refused = over_limits(environ, limit)
            if refused is not None:  # the same answer for hot routes and Flask's
                response = web.error_response(refused, self.service_metadata)
                route = path if handler is not None else "unmatched"
                labels = (route, method, response.status_code)
                answer = response(environ, start_response)
            elif handler is None:
                answer = self.flask_app(environ, start_response)
                labels = environ.get(_ANSWERED)  # handed back by Flask (see _hand_back_answers)
            else:
                response = self._answer(handler, environ, limit)
                labels = (path, method, response.status_code)
                answer = response(environ, start_response)
            if labels is not None and self.metrics is not None:
                route, method, status = labels
                self.metrics.request_done(route, method, status, time.perf_counter() - started)
            return answer
        finally:
            for batcher in announced:
                batcher.leave()

    def _announce(self, environ: dict[str, Any]) -> list[Batcher]:
        """Announce the request to every batcher; those that took it (each is left once)."""
        threaded = bool(environ.get("wsgi.multithread"))
        return [batcher for batcher in self.batchers if batcher.arrive(threaded)]

    def _answer(self, handler: Handler, environ: dict[str, Any], limit: int | None) -> Response:
        try:
            return handler(LeanRequest(environ, limit))
        except Exception as exc:
            return web.error_response(_named_limit(exc, limit), self.service_metadata)


def body_too_large(limit: int | None) -> Exception:
    """The 413 for a request body over ``limit`` bytes, naming the limit."""
    from werkzeug.exceptions import RequestEntityTooLarge

    if limit is None:
        return RequestEntityTooLarge()
    size = f" ({limit / 2**20:g} MiB)" if limit >= 2**20 else ""
    return RequestEntityTooLarge(
        f"the request body is over this service's limit of {limit} bytes{size}"
    )


def over_limits(environ: Mapping[str, Any], body_limit: int | None) -> Exception | None:
    """The 414 or 413 naming the limit the request's query string or body is over, if any.

    A chunked body has no length to tell; it is refused while read (see
    :class:`_CappedBody`).
    """
    size = len(environ.get("QUERY_STRING") or "")
    if size > QUERY_LIMIT:
        from werkzeug.exceptions import RequestURITooLarge

        return RequestURITooLarge(
            f"the query string has {size} bytes, over this service's limit of {QUERY_LIMIT}; "
            "send the values in a POST body"
        )
    length = environ.get("CONTENT_LENGTH")
    if length and body_limit is not None and length.isdigit() and int(length) > body_limit:
        return body_too_large(body_limit)
    return None


def _named_limit(exc: BaseException, limit: int | None) -> BaseException:
    """``exc``, or the 413 naming ``limit`` when it is werkzeug's own 413 (which names none)."""
    from werkzeug.exceptions import RequestEntityTooLarge

    if isinstance(exc, RequestEntityTooLarge) and exc.description == (
        RequestEntityTooLarge.description
    ):
        return body_too_large(limit)
    return exc


class _CappedBody:
    """A chunked request body (no ``Content-Length``) refused with a 413 once over ``limit``.

    werkzeug reads such a body up to the limit and stops there without a
    word, so a JSON body cut short would be a 400 "does not parse".
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit or (
            self._read == self._limit and data and self._stream.read(1)
        ):
            raise body_too_large(self._limit)
        return data

    def _left(self, size: int | None) -> int:
        left = self._limit + 1 - self._read
        return left if size is None or size < 0 else min(size, left)

    def read(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.read(self._left(size)))

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.readline(self._left(size)))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def install_front_door(
    app: Flask,
    hot_routes: HotRoutes,
    *,
    metrics: Metrics | None = None,
    batchers: Sequence[Batcher] = (),
    service_metadata: Mapping[str, Any] | None = None,
) -> FrontDoor:
    """Put the front door in front of ``app`` (once, after every route is added).

    ``hot_routes`` are the routes offered as hot; the door keeps none of them
    if the app has request hooks that are not pipeforge's.
    """
    if metrics is not None:
        _hand_back_answers(app)
    _answer_limits(app, service_metadata)
    if _user_hooks(app):
        hot_routes = {}
    door = FrontDoor(
        app.wsgi_app,
        app.config,
        dict(hot_routes),
        metrics=metrics,
        batchers=batchers,
        service_metadata=service_metadata,
    )
    app.wsgi_app = door  # type: ignore[method-assign]
    return door


def install_fast_routes(app: Flask, config: Mapping[str, Any]) -> list[str]:
    """The paths the app's front door answers itself (0.1's name, kept for its callers).

    ``create_app`` installs the door; this installs nothing more and says
    which routes skip Flask.
    """
    door = app.wsgi_app
    if not isinstance(door, FrontDoor):
        return []
    return sorted({path for _, path in door.hot_routes})


def _answer_limits(app: Flask, service_metadata: Mapping[str, Any] | None) -> None:
    """A 413 that Flask raises while reading a body names the limit (the door checked the rest)."""
    from flask import request
    from werkzeug.exceptions import RequestEntityTooLarge

    def too_large(exc: RequestEntityTooLarge) -> Response:
        exc = _named_limit(exc, request.max_content_length)  # type: ignore[assignment]
        return web.error_response(exc, service_metadata)

    app.register_error_handler(RequestEntityTooLarge, too_large)


def _hand_back_answers(app: Flask) -> None:
    """Have Flask put the rule it matched (or ``unmatched``) and the status into the environ."""
    from flask import request

    def hand_back(response: Any) -> Any:
        current = request._get_current_object()  # type: ignore[attr-defined]
        rule = current.url_rule
        current.environ[_ANSWERED] = (
            rule.rule if rule is not None else "unmatched",
            current.method,
            response.status_code,
        )
        return response

    setattr(hand_back, PIPEFORGE_HOOK, True)
    app.after_request(hand_back)


def _user_hooks(app: Flask) -> bool:
    """Whether the app has request hooks that pipeforge did not register (a user's CORS, say)."""
    registries: tuple[Mapping[Any, list[Any]], ...] = (
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
