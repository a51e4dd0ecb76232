"""Sending the fuzz suite's requests and judging the answers (tests/test_fuzz_routes.py).

:func:`all_routes` finds what a running server serves: every operation of its
``/openapi.json`` and every rule of its Flask app's URL map. A
:class:`FuzzRequest` is sent exactly as drawn by :func:`send`
(``http.client``: nothing is normalised on the way), and :func:`problems`
says what is wrong with the answer: a 5xx, an error that is not the JSON
error body, JSON that is not strict.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = [
    "Route",
    "FuzzRequest",
    "Answer",
    "quote",
    "send",
    "problems",
    "port_of",
    "openapi_routes",
    "flask_routes",
    "all_routes",
]


@dataclass(frozen=True)
class Route:
    """One method and path template (``/api/model/{name}``) of a running server."""

    method: str
    path: str
    query: tuple[str, ...] = ()  # the documented query parameters
    fields: tuple[str, ...] = ()  # the documented body fields
    list_body: bool = False  # the body is a list of objects with those fields
    source: str = "openapi"

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    target: str  # path and query string, percent-encoded as sent
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    chunked: bool = False

    def __str__(self) -> str:
        body = self.body
        shown = "" if body is None else repr(body[:300]) + ("..." if len(body) > 300 else "")
        size = "" if body is None else f" ({len(body)} bytes{', chunked' if self.chunked else ''})"
        headers = "".join(f"\n  {name}: {value}" for name, value in self.headers)
        target = self.target if len(self.target) <= 300 else self.target[:300] + "..."
        return f"{self.method} {target}{headers}\n  body{size}: {shown}"


def quote(text: str, safe: str = "") -> str:
    """Percent-encoding of any text; lone surrogates become the bytes a lax encoder writes."""
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe=safe)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    streaming: bool = False


def send(host: str, port: int, request: FuzzRequest, timeout: float = 30.0) -> Answer:
    """Send ``request`` exactly as drawn; an event stream is left after its headers.

    A server that answers before reading the whole body (a 413) may close
    the connection while it is still being sent: the answer is read anyway.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(request.method, request.target, skip_accept_encoding=True)
        for name, value in request.headers:
            conn.putheader(name, value)
        body = request.body
        if body is not None and request.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            if body is not None and request.chunked:
                step = 1 << 20
                for start in range(0, len(body), step):
                    piece = body[start : start + step]
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            elif body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early: read what was said
        response = conn.getresponse()
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith("text/event-stream"):
            return Answer(response.status, content_type, b"", streaming=True)
        return Answer(response.status, content_type, response.read())
    finally:
        conn.close()


def _refuse_constant(name: str) -> object:
    raise ValueError(f"the answer holds the non-JSON literal {name}")


def problems(request: FuzzRequest, answer: Answer) -> list[str]:
    """What is wrong with ``answer``: a 5xx, an error without the JSON error body, bad JSON."""
    found = []
    if answer.status >= 500:
        found.append(f"5xx: {answer.status}")
    is_json = answer.content_type.split(";")[0].strip() == "application/json"
    if 400 <= answer.status < 500 and not is_json:
        found.append(f"{answer.status} is not JSON but {answer.content_type!r}")
    if not is_json or request.method == "HEAD" or not answer.body:
        if 400 <= answer.status and request.method != "HEAD":
            found.append(f"{answer.status} has an empty body")
        return found
    try:
        data = json.loads(answer.body, parse_constant=_refuse_constant)
    except ValueError as exc:
        return [*found, f"{answer.status} answer is not strict JSON: {exc}"]
    if 400 <= answer.status:
        metadata = data.get("metadata") if isinstance(data, dict) else None
        if not (
            isinstance(metadata, dict)
            and metadata.get("status") == "ERROR"
            and isinstance(metadata.get("error_code"), int)
            and isinstance(metadata.get("error_message"), str)
        ):
            found.append(f"{answer.status} body is not the documented error body")
    return found


def port_of(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _schema_fields(operation: dict, doc: dict) -> tuple[tuple[str, ...], bool]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    is_list = schema.get("type") == "array"
    item = schema.get("items", {}) if is_list else schema
    return tuple(item.get("properties", {})), is_list


def openapi_routes(url: str) -> list[Route]:
    """Every operation of the server's ``/openapi.json``."""
    doc = requests.get(url + "/openapi.json", timeout=30).json()
    routes = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            fields, is_list = _schema_fields(operation, doc)
            params = operation.get("parameters", [])
            query = tuple(p["name"] for p in params if p.get("in") == "query")
            routes.append(Route(method.upper(), path, query, fields, is_list))
    return routes


def flask_routes(config: Path, token: str, folder: Path) -> list[Route]:
    """Every rule of the URL map of the app ``config`` builds (in this process, on a copy)."""
    from pipeforge.config import load_config
    from pipeforge.server import create_app

    copy = folder / "routes"
    shutil.copytree(config.parent, copy, ignore=shutil.ignore_patterns("*.db", "*.log"))
    saved = os.environ.get("PIPEFORGE_TOKENS")
    os.environ["PIPEFORGE_TOKENS"] = token  # the guard needs a token to be built
    try:
        app = create_app(load_config([str(copy / config.name)]))
    finally:
        if saved is None:
            del os.environ["PIPEFORGE_TOKENS"]
        else:
            os.environ["PIPEFORGE_TOKENS"] = saved
    return [
        Route(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), source="flask")
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods or ())
    ]


def all_routes(url: str, config: Path, token: str, folder: Path) -> list[Route]:
    """The routes of the server at ``url`` serving ``config``: OpenAPI's, then the others."""
    documented = openapi_routes(url)
    known = {(r.method, r.path) for r in documented}
    extra = [r for r in flask_routes(config, token, folder) if (r.method, r.path) not in known]
    return sorted(documented + extra, key=lambda r: (r.path, r.method))
