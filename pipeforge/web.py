"""The HTTP boundary: how every pipeforge route reads JSON, answers and fails.

Every route of the web service — each predict service, ``/alive``, ``/list``,
the lifecycle routes, the pipelines routes, the online-learning ``/api/*``
routes — encodes its answers and its errors here, so that a client meets one
JSON dialect and one error body whatever it calls.

Writing a route
---------------
::

    from pipeforge import web
    from pipeforge.errors import RequestError

    def learn():
        body = web.read_json(expect=dict)            # 400 unless a JSON object was sent
        if "id" not in body:
            raise RequestError("the body needs an 'id'")   # -> 400, the error body below
        ...
        return web.json_response({"result": value})  # numpy, pandas, dates, NaN: handled

    app.add_url_rule("/api/learn", view_func=web.guarded(learn, metadata), methods=["POST"])

An app built by :func:`pipeforge.server.create_app` already answers every
exception raised by a view through :func:`error_response`; :func:`guarded` is
for views that want it applied before the app's handlers (a decorator list
that counts statuses, say) or for apps of your own
(:func:`install_error_handlers` does the same for a whole Flask app).

Encoding rule (:func:`dumps`, :func:`to_jsonable`)
--------------------------------------------------
- numpy arrays and scalars, pandas ``Series``/``Index`` become lists and plain
  numbers; a ``DataFrame`` becomes a list of records (one object per row);
- ``datetime``, ``date``, ``time``, pandas ``Timestamp`` and numpy
  ``datetime64`` become ISO 8601 strings; ``NaT`` and ``pd.NA`` become ``null``;
- tuples and sets become lists; mapping keys become strings;
  ``Decimal`` becomes a number, an ``Enum`` its value; anything else its ``str()``;
- float32 values are written as their own shortest decimal (``0.1``, not the
  ``0.10000000149011612`` of the same value widened to float64);
- **non-finite numbers — NaN, +Infinity, -Infinity — become ``null``**, in
  results and metadata alike. The output is always strict JSON (RFC 8259),
  never the ``NaN``/``Infinity`` literals some parsers refuse.

With orjson installed (``pip install pipeforge[fast]``) it writes and reads
the JSON, numpy arrays natively; else the standard library does, with the
same values (:mod:`pipeforge.json_codec`).

Error rule (:func:`error_body`, :func:`error_response`)
--------------------------------------------------------
Every error answer is ``{"metadata": {"service_name", "service_version", ...,
"status": "ERROR", "error_code", "error_message"}}`` with no result, and the
status comes from the exception:

=======================================  ======  ==========================================
exception                                status  ``error_message``
=======================================  ======  ==========================================
werkzeug ``HTTPException`` (e.g. from    its     ``"<Name>: <description>"``; headers such as
a decorator: ``Unauthorized(...)``)      code    ``WWW-Authenticate`` and ``Allow`` are kept
any exception with an ``http_status``    that    ``str(exc)`` (and its ``error_code``)
int attribute
:class:`~pipeforge.errors.RequestError`  400     ``str(exc)``, ``error_code`` kept
:class:`~pipeforge.errors.UnknownVersionError`  404  ``str(exc)``
:class:`~pipeforge.errors.VersionError`  409     ``str(exc)``
:class:`~pipeforge.errors.NoModelError`  503     ``"no model available yet: ..."``
:class:`~pipeforge.errors.PredictError`  500     its ``error_message`` and ``error_code``
anything else                            500     ``"internal server error; see the server
                                                 log"`` -- the traceback is logged, nothing
                                                 of it is sent
=======================================  ======  ==========================================

``error_code`` is ``-1`` unless the exception carries one. To give a new
error its own status, give its class an ``http_status`` attribute.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import NoModelError, PredictError, RequestError, UnknownVersionError, VersionError
from .json_codec import NonFinite, dumpb, dumps, loads, to_jsonable

if TYPE_CHECKING:
    from flask import Flask, Response
    from werkzeug.wrappers import Request

__all__ = [
    "to_jsonable",
    "dumps",
    "json_response",
    "ok_metadata",
    "error_body",
    "error_status",
    "error_response",
    "read_json",
    "json_kind",
    "parse_flag",
    "guarded",
    "install_error_handlers",
    "GENERIC_ERROR",
]

logger = logging.getLogger(__name__)

GENERIC_ERROR = "internal server error; see the server log"
_NO_DEFAULT = object()
_JSON_KINDS = ((dict, "object"), (list, "list"), (str, "string"), (bool, "boolean"))


# -- encoding ------------------------------------------------------------------
# The rule is carried out by pipeforge.json_codec (orjson when installed, else json).


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Response:
    """A Flask response with ``body`` encoded by :func:`dumps`."""
    return _response_class()(
        dumpb(body), status=status, headers=headers, mimetype="application/json"
    )


@functools.cache
def _response_class() -> type[Response]:
    from flask import Response  # imported at first use: scripts need no Flask

    return Response


# -- errors --------------------------------------------------------------------


def ok_metadata(service_metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``metadata`` of a successful answer: service name/version, ``status: "OK"``."""
    metadata: dict[str, Any] = {"service_name": None, "service_version": None}
    metadata.update(service_metadata or {})
    metadata.update(status="OK", error_code=0)
    return metadata


def error_body(
    service_metadata: Mapping[str, Any] | None, message: str, error_code: int = -1
) -> dict[str, Any]:
    """The one error body: ``{"metadata": {..., "status": "ERROR", "error_code", "error_message"}}``."""
    metadata: dict[str, Any] = {"service_name": None, "service_version": None}
    metadata.update(service_metadata or {})
    metadata.update(status="ERROR", error_code=error_code, error_message=message)
    return {"metadata": metadata}


def error_status(exc: BaseException) -> tuple[int, str, int]:
    """``(status, error_message, error_code)`` for ``exc`` by the module's table.

    Does not log; :func:`error_response` logs what falls through to the
    generic 500.
    """
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        message = f"{exc.name}: {exc.description}" if exc.description else exc.name
        return exc.code or 500, message, -1
    status = getattr(exc, "http_status", None)
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status, str(exc), _code(exc)
    if isinstance(exc, RequestError):
        return 400, str(exc), exc.error_code
    if isinstance(exc, UnknownVersionError):
        return 404, str(exc), -1
    if isinstance(exc, VersionError):
        return 409, str(exc), -1
    if isinstance(exc, NoModelError):
        return 503, f"no model available yet: {exc}", -1
    if isinstance(exc, PredictError):
        return 500, exc.error_message, exc.error_code
    return 500, GENERIC_ERROR, -1


def _code(exc) -> int:
    code = getattr(exc, "error_code", -1)
    return code if isinstance(code, int) and not isinstance(code, bool) else -1


def error_response(
    exc: BaseException, service_metadata: Mapping[str, Any] | None = None
) -> Response:
    """The JSON error response for ``exc``; an unexpected exception is logged with its traceback."""
    from werkzeug.exceptions import HTTPException

    status, message, code = error_status(exc)
    headers = None
    if isinstance(exc, HTTPException):
        headers = [
            (k, v)
            for k, v in exc.get_headers()
            if k.lower() not in ("content-type", "content-length")
        ]
    elif message == GENERIC_ERROR and status == 500:
        logger.error("unexpected error while answering a request", exc_info=exc)
    elif status == 503:  # unavailable: said in the log where it arises, once per outage
        logger.debug("request answered 503: %s", message)
    elif status >= 500:
        logger.warning("request failed with %d: %s", status, message)
    return json_response(error_body(service_metadata, message, code), status, headers)


def guarded(
    view: Callable[..., Any], service_metadata: Mapping[str, Any] | None = None
) -> Callable[..., Any]:
    """``view`` answering any exception it raises with :func:`error_response`."""

    @functools.wraps(view)
    def answer(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except Exception as exc:
            return error_response(exc, service_metadata)

    return answer


def install_error_handlers(app: Flask, service_metadata: Mapping[str, Any] | None = None) -> None:
    """Answer every error of ``app`` (views, routing, 404/405/413) with the JSON error body."""
    from werkzeug.exceptions import HTTPException

    app.register_error_handler(HTTPException, lambda exc: error_response(exc, service_metadata))
    app.register_error_handler(Exception, lambda exc: error_response(exc, service_metadata))


# -- reading requests ----------------------------------------------------------


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type (``object``, ``list``, ``number``, ...)."""
    if value is None:
        return "null"
    for kind, name in _JSON_KINDS:
        if isinstance(value, kind):
            return name
    return "number"


def read_json(
    request: Request | None = None,
    *,
    expect: type | tuple[type, ...] | None = None,
    default: Any = _NO_DEFAULT,
    what: str = "the request body",
) -> Any:
    """The decoded JSON body of ``request`` (Flask's current one by default).

    Raises :class:`~pipeforge.errors.RequestError` (400) when the body is not
    JSON, when it is sent with a non-JSON ``Content-Type`` (no content type
    at all is accepted), or when ``expect`` is given and the decoded value is
    not of that type (``dict`` for an object, ``list`` for a list). An empty
    body returns ``default`` if given, else is a 400 too. NaN and infinity
    literals are refused: the body must be strict JSON.
    """
    if request is None:
        from flask import request as current_request

        request = current_request
    mimetype = request.mimetype
    raw = request.get_data(cache=False)
    if not raw.strip() and default is not _NO_DEFAULT:
        return default
    if mimetype and not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise RequestError(
            f"{what} must be JSON sent with Content-Type: application/json; got {mimetype!r}"
        )
    if not raw.strip():
        raise RequestError(f"{what} is empty; send JSON")
    try:
        value, text = loads(raw)
    except NonFinite as exc:
        raise RequestError(f"{what} holds {exc}: JSON numbers must be finite") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise RequestError(f"{what} must be JSON; it does not parse") from None
    if text is not None and _may_hold_surrogates(text) and _lone_surrogate(value):
        raise RequestError(
            f"{what} holds a lone surrogate (such as \\ud800) in a string: JSON text must be "
            "valid Unicode"
        )
    if expect is not None and not isinstance(value, expect):
        kinds = expect if isinstance(expect, tuple) else (expect,)
        wanted = " or ".join(f"a JSON {json_kind(kind())}" for kind in kinds)
        raise RequestError(f"{what} must be {wanted}; got a JSON {json_kind(value)}")
    return value


def parse_flag(name: str, value: Any) -> bool:
    """A yes/no request value: JSON ``true``/``false``, or ``true``/``false``/``1``/``0`` as text.

    The one rule for every flag a route reads (a predict service's ``bool``
    fields, ``/fit``'s ``persist``, the pipelines' ``?svg=``), as SPEC section
    8 has it: the strings are accepted in a query string and, leniently, in a
    JSON body; a JSON number is not a flag. Anything else is a
    :class:`~pipeforge.errors.RequestError` (400) naming the field.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise RequestError(
        f"value of {name!r} must be a boolean (JSON true/false, or true/false/1/0 in a "
        f"query string); got {shown}"
    )


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _may_hold_surrogates(text: str) -> bool:
    """Whether decoded JSON ``text`` may hold a lone surrogate (C loops only: cheap)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # surrogates sent as bytes
            return True
    return "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a string (or a key) that is not valid Unicode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and not item.isprintable():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict | list):
            stack.extend(item.items() if isinstance(item, dict) else item)
        elif isinstance(item, tuple):  # a (key, value) pair
            stack.extend(item)
    return False
