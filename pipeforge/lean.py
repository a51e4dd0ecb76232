"""The lean request and answer of the hot routes: what they need of HTTP, and nothing more.

The app's front door (:mod:`pipeforge.server.front_door`) answers ``/predict``
and the online API's ``POST /api/predict`` and ``/api/learn`` itself. Those
routes read the method, the query string and the JSON body, and write a JSON
answer; a werkzeug ``Request`` and ``Response`` cost several times what they
use of them. So the door hands them a :class:`LeanRequest`, which reads the
WSGI environ directly, and they may answer with an :class:`Answer`, whose
status line and headers are prebuilt.

A :class:`LeanRequest` has what :meth:`PredictService.parse
<pipeforge.server.PredictService.parse>` and :func:`pipeforge.web.read_json`
read (``method``, ``args``, ``headers``, ``mimetype``, ``get_data()``); any other
attribute of a werkzeug ``Request`` (``cookies``, ``remote_addr``,
``get_json()``, ...) is there too, taken from a real ``Request`` built on
first use from the same environ (with the body read so far). Odd inputs are
read as werkzeug reads them: the first value of a repeated query parameter,
``+`` as a space, percent escapes that are not UTF-8 kept as they were sent;
a chunked body, or one without a plain ``Content-Length``, is read by
werkzeug itself. A query string that is not UTF-8 is a 400 here (werkzeug
raises ``UnicodeDecodeError``).

Routes that Flask answers (a decorated route, a subclass of ``PredictService``)
keep getting Flask's own request.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from .errors import RequestError
from .json_codec import dumpb

__all__ = ["Answer", "LeanRequest", "QueryArgs", "json_answer"]


class QueryArgs(dict[str, str]):
    """The query parameters: the first value of each name (as werkzeug's ``args[name]``)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        self._pairs = pairs
        for name, value in pairs:
            self.setdefault(name, value)

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        """The first value of ``key`` (converted by ``type``; ``default`` if that fails)."""
        if key not in self:
            return default
        value = self[key]
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in the order sent."""
        return [value for name, value in self._pairs if name == key]


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query string's (name, value) pairs, decoded as werkzeug decodes them.

    werkzeug gives ``parse_qsl(..., keep_blank_values=True,
    errors="werkzeug.url_quote")`` of the string as UTF-8: the same here, by
    hand, and no decoding at all for a plain string.
    """
    pairs = []
    if "%" not in query and "+" not in query and query.isascii():
        for part in query.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((name, value))
        return pairs
    import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" error handler)

    try:
        text = query.encode("latin-1").decode()
    except UnicodeError:
        raise RequestError("the query string must be UTF-8 (percent-encode other bytes)") from None
    for part in text.split("&"):
        if part:
            name, _, value = part.replace("+", " ").partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text, errors="werkzeug.url_quote")


class LeanRequest:
    """One request of a hot route, read straight from its WSGI ``environ`` (module docstring)."""

    __slots__ = ("environ", "method", "max_content_length", "_args", "_body", "_full")

    def __init__(self, environ: dict[str, Any], max_content_length: int | None = None) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.max_content_length = max_content_length
        self._args: QueryArgs | None = None
        self._body: bytes | None = None
        self._full: Any = None

    @property
    def args(self) -> QueryArgs:
        """The query parameters (first value of each name; ``getlist`` for all)."""
        if self._args is None:
            self._args = QueryArgs(_query_pairs(self.environ.get("QUERY_STRING", "")))
        return self._args

    @property
    def mimetype(self) -> str:
        """The body's media type, lower case, without parameters (``""`` if none was sent)."""
        return self.environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()

    @property
    def headers(self) -> Any:
        """The request's headers (werkzeug's ``EnvironHeaders``: case-insensitive, read-only)."""
        from werkzeug.datastructures import EnvironHeaders

        return EnvironHeaders(self.environ)

    def get_data(self, cache: bool = True, as_text: bool = False) -> Any:
        """The request body (kept, whatever ``cache`` says, for a later reader)."""
        if self._body is None:
            self._body = self._read()
        return self._body.decode(errors="replace") if as_text else self._body

    def _read(self) -> bytes:
        environ = self.environ
        length = environ.get("CONTENT_LENGTH")
        if "HTTP_TRANSFER_ENCODING" in environ or not length or not length.isdigit():
            return self._werkzeug().get_data()  # chunked, absent or odd: werkzeug's rules
        size = int(length)
        limit = self.max_content_length
        if limit is not None and size > limit:
            from werkzeug.exceptions import RequestEntityTooLarge

            raise RequestEntityTooLarge()
        data = environ["wsgi.input"].read(size) if size else b""
        if len(data) < size:
            from werkzeug.exceptions import ClientDisconnected

            raise ClientDisconnected()
        return data

    def _werkzeug(self) -> Any:
        """A werkzeug ``Request`` of the same environ (the body read so far handed over)."""
        if self._full is None:
            from werkzeug.wrappers import Request

            environ = self.environ
            if self._body is not None:
                environ = dict(environ, CONTENT_LENGTH=str(len(self._body)))
                environ["wsgi.input"] = io.BytesIO(self._body)
                environ.pop("HTTP_TRANSFER_ENCODING", None)
            self._full = Request(environ)
            self._full.max_content_length = self.max_content_length
        return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._werkzeug(), name)


_HEADS: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _HEADS.get(status)
    if line is None:
        from werkzeug.http import HTTP_STATUS_CODES

        line = _HEADS[status] = f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"
    return line


_JSON = ("Content-Type", "application/json")


class Answer:
    """A JSON answer written with a prebuilt head: a WSGI app, like a werkzeug ``Response``.

    ``status_code``, ``status``, ``data``, ``get_data()``, ``get_json()``,
    ``mimetype`` and ``headers`` (a list of pairs) read as a ``Response``'s.
    """

    __slots__ = ("status_code", "data", "extra")

    mimetype = "application/json"

    def __init__(
        self, data: bytes, status_code: int = 200, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.status_code = status_code
        self.data = data
        self.extra = list(extra)

    @property
    def status(self) -> str:
        return _status_line(self.status_code)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [_JSON, ("Content-Length", str(len(self.data))), *self.extra]

    def get_data(self, as_text: bool = False) -> Any:
        return self.data.decode() if as_text else self.data

    def get_json(self) -> Any:
        import json

        return json.loads(self.data)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        return [self.data]


def json_answer(body: Any, status: int = 200, *, numeric_arrays: bool = False) -> Answer:
    """An :class:`Answer` with ``body`` encoded by the rule of :mod:`pipeforge.web`.

    ``numeric_arrays``: see :func:`pipeforge.json_codec.dumpb`.
    """
    return Answer(dumpb(body, numeric_arrays=numeric_arrays), status)
