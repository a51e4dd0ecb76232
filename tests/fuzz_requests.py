"""The requests of the fuzz suite (tests/test_fuzz_routes.py), as Hypothesis strategies.

:func:`requests_for` draws requests aimed at one :class:`~tests.fuzz_http.Route`:
a client's well-formed request (the route's schema or the :class:`Example`'s
bodies, the token, JSON) with one thing bent — the body, the content type, a
header, the token, the method, the query string, chunked sending — or
anything at all: wrong types, huge numbers, ``1e308``, ``NaN`` and
``Infinity`` as JSON text, lone surrogates escaped as ``\\ud800``, deep
nesting, long strings, empty bodies, bytes that are no JSON, every content
type, bodies over the size limit, odd query strings and path values.
:func:`odd_requests` draws paths no route has; :func:`known_bad_requests`
lists the bodies the issue reported, for every route that takes one.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.fuzz_http import FuzzRequest, Route, quote

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND")
#: names the API's bodies and query strings use, across routes
FIELDS = (
    "id",
    "model",
    "features",
    "ground_truth",
    "prediction",
    "flavor",
    "model_version",
    "version",
    "force",
    "save",
    "persist",
    "evaluate",
    "name",
    "data",
    "token",
)
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json; charset=latin-1",
    "application/problem+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "application/json\u0000",
    "",
)
#: JSON texts no encoder writes, and bytes that are no JSON at all
RAW_BODIES = (
    b"",
    b"{",
    b"[1e999]",
    b'{"features": {"age": 1e400}, "ground_truth": -1e400}',
    b"NaN",
    b"-Infinity",
    b'{"id": "\\ud800", "model": "\\udfff"}',
    b'{"id": "\\u0000"}',
    b'{"a": 1, "a": 2}',
    b"\xff\xfe\x00{",
    b"\xef\xbb\xbf{}",
    b"null",
    b"[]",
    b"{}",
    b'"' + b"x" * 100_000 + b'"',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b"model_version=1&force=true",
    b"--xyz\r\nContent-Disposition: form-data; name=model_version\r\n\r\n1\r\n--xyz--\r\n",
)
#: more than the 16 MiB every route accepts
OVERSIZED = 16 * 1024 * 1024 + 1
_OVERSIZED_BODIES = (b"x" * OVERSIZED, b"[" + b"1," * (OVERSIZED // 2) + b"1]")
_SURROGATES = ("\ud800", "a\udfff", "\udbff\udc00\ud800", "\ud83d")
_SPECIAL_FLOATS = (1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, float("nan"))
_HUGE_INTS = (2**63, -(2**63) - 1, 2**64, 10**400, -(10**400))
_ODD_TEXT = ("", " ", "..", "../../etc/passwd", "%", "%00", "\x00", "\u202e", "é", "🙂", "null")


def _pick(values: tuple) -> st.SearchStrategy:
    """``sampled_from`` whose repr stays short (the values may be megabytes long)."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def text_values() -> st.SearchStrategy[str]:
    odd = st.sampled_from(_SURROGATES + _ODD_TEXT)
    long = st.integers(300, 70_000).map(lambda n: "x" * n)
    return st.one_of(st.text(max_size=12), st.text(max_size=12), odd, odd, long)


def scalars() -> st.SearchStrategy[object]:
    """JSON leaves, nasty ones often: huge integers and floats, NaN, surrogates, long text."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        _pick(_HUGE_INTS + _SPECIAL_FLOATS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-1e3, 1e3),
        text_values(),
    )


def keys(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(names or FIELDS), st.text(max_size=8), st.sampled_from(_SURROGATES)
    )


def json_values(names: tuple[str, ...]) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys(names), inner, max_size=4)
        ),
        max_leaves=12,
    )


def encode(value: object) -> bytes:
    """JSON as a lenient encoder writes it: ``NaN`` as text, surrogates escaped as ``\\ud800``."""
    return json.dumps(value).encode("ascii")


@dataclass(frozen=True)
class Example:
    """What the fuzzed service holds: names that exist, and well-formed feature values."""

    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # path parameter -> values
    features: tuple[str, ...] = ()
    ids: tuple[str, ...] = ("a", "b", "c")
    #: the well-formed bodies of routes OpenAPI gives no schema for: label -> field -> values
    bodies: dict[str, dict[str, st.SearchStrategy]] = field(default_factory=dict)


def path_values(example: Example, name: str) -> st.SearchStrategy[str]:
    known = example.names.get(name, ())
    odd = st.one_of(
        text_values().map(quote), st.sampled_from(["..%2f..%2fsetup.cfg", "a/b", "%2e%2e"])
    )
    return st.one_of(st.sampled_from(known), odd) if known else odd


def queries(route: Route, example: Example) -> st.SearchStrategy[str]:
    names = route.query + FIELDS
    value = st.one_of(
        st.sampled_from(("1", "0", "1e308", "1e999", "NaN", "-inf", "true", "", "[]", "{}")),
        st.floats(-10, 10).map(repr),
        text_values(),
        st.sampled_from(example.ids + tuple(n for v in example.names.values() for n in v) or ("",)),
    )
    pair = st.tuples(keys(names), value).map(lambda kv: f"{quote(kv[0])}={quote(kv[1])}")
    odd = st.sampled_from(("&&", "=", "a", "a=1=2", "%zz", "%ED%A0%80=%ED%A0%80"))
    documented = st.just("&".join(f"{quote(n)}={quote('1.5')}" for n in route.query))
    return st.one_of(
        st.just(""), documented, st.lists(st.one_of(pair, odd), max_size=6).map("&".join)
    )


def shaped(route: Route, example: Example) -> st.SearchStrategy[object]:
    """Bodies with the route's fields, mostly well-formed: where a parser's edge cases live."""
    good_number = good_numbers()
    features = st.dictionaries(
        st.sampled_from(example.features or ("x",)),
        st.one_of(good_number, scalars()),
        max_size=len(example.features) + 1,
    )
    value_of = {
        "id": st.one_of(st.sampled_from(example.ids), scalars()),
        "model": st.one_of(st.sampled_from(example.names.get("name", ("x",))), scalars()),
        "features": st.one_of(features, json_values(example.features)),
        "ground_truth": st.one_of(good_number, scalars()),
        "model_version": st.one_of(st.integers(-3, 5).map(str), st.integers(-3, 5), scalars()),
    }
    names = route.fields or FIELDS
    record = st.fixed_dictionaries(
        {},
        optional={
            name: value_of.get(name, st.one_of(good_number, scalars())) for name in names + FIELDS
        },
    )
    if route.list_body:
        return st.one_of(st.lists(record, min_size=1, max_size=3), record)
    return record


def good_numbers() -> st.SearchStrategy[float]:
    return st.floats(-100, 100, allow_nan=False)


def well_formed(route: Route, example: Example) -> st.SearchStrategy[object]:
    """Bodies a client of the route would send (its schema's or the example's), one field bent."""
    fields = example.bodies.get(route.label)
    if fields is None:
        fields = {name: good_numbers() for name in route.fields}
    if not fields:
        return st.just({})
    good = st.fixed_dictionaries(fields)
    bent = st.tuples(good, st.sampled_from(sorted(fields)), scalars()).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    record = st.one_of(good, good, bent)
    if route.list_body:
        return st.lists(record, min_size=1, max_size=3)
    return record


def bodies(route: Route, example: Example) -> st.SearchStrategy[tuple[bytes | None, str | None]]:
    """(body, content type): JSON of every shape and bytes of none, under every content type."""
    data = st.one_of(
        *[well_formed(route, example).map(encode)] * 3,
        st.none(),
        shaped(route, example).map(encode),
        json_values(route.fields or FIELDS).map(encode),
        _pick(RAW_BODIES),
        st.binary(max_size=64),
        _pick(_OVERSIZED_BODIES),
    )
    content_type = st.one_of(
        st.just("application/json"), st.just("application/json"), st.sampled_from(CONTENT_TYPES)
    )
    return st.tuples(data, st.one_of(st.none(), content_type))


_LONGEST_TARGET = 3900
_TOKENISH = string.ascii_letters + string.digits


_EXTRA_HEADERS = (
    ("Origin", "https://evil.example"),
    ("Sec-Fetch-Site", "cross-site"),
    ("Last-Event-ID", "99999999999999999999"),
    ("Last-Event-ID", "-1"),
    ("Accept", "text/html"),
    ("Authorization", "Bearer"),
    ("Authorization", "Basic Og=="),
    ("X-Forwarded-For", "127.0.0.1, 10.0.0.1"),
)


def _parts(route: Route, example: Example, token: str | None):
    """Everything of a request but its method and path, as one strategy built once."""
    auth = st.one_of(st.none(), st.text(_TOKENISH, max_size=40).map(lambda t: f"Bearer {t}"))
    if token is not None:
        auth = st.one_of(auth, st.just(f"Bearer {token}"), st.just(f"Bearer {token}"))
    return st.tuples(
        queries(route, example),
        bodies(route, example),
        st.lists(st.sampled_from(_EXTRA_HEADERS), max_size=2, unique_by=lambda h: h[0]),
        auth,
        st.integers(0, 9),
    )


def _fit(target: str) -> str:
    """``target`` cut to what gunicorn reads (it refuses request lines over 4094 bytes itself)."""
    return re.sub(r"%[0-9A-F]?$", "", target[:_LONGEST_TARGET])


def _request(method: str, path: str, parts: tuple) -> FuzzRequest:
    query, (body, content_type), extra, authorization, one_in_ten = parts
    target = _fit(f"{path}?{query}" if query else path)
    headers = [("Content-Type", content_type)] if content_type is not None else []
    headers += extra
    if authorization is not None and not any(h[0] == "Authorization" for h in headers):
        headers.append(("Authorization", authorization))
    chunked = body is not None and one_in_ten == 0
    return FuzzRequest(method, target, tuple(headers), body, chunked)


_BENDS = ("none", "none", "body", "content type", "header", "token", "method", "query", "chunked")


def _bent(clean: FuzzRequest, how: str, method: str, parts: tuple, token: str | None):
    """``clean`` with one thing changed (``how``), taken from a wild request's ``parts``."""
    wild = _request(method, clean.target, parts)
    path, _, query = clean.target.partition("?")
    headers = dict(clean.headers)
    if how == "body":
        return FuzzRequest(clean.method, clean.target, clean.headers, wild.body)
    if how == "content type":
        headers.pop("Content-Type", None)
        headers.update({k: v for k, v in wild.headers if k == "Content-Type"})
    elif how == "header":
        headers.update({k: v for k, v in parts[2]})
    elif how == "token":
        headers.pop("Authorization", None)
        headers.update({k: v for k, v in wild.headers if k == "Authorization"})
        if token is not None and headers.get("Authorization") == f"Bearer {token}":
            headers["Authorization"] = f"Bearer {token}x"
    elif how == "method":
        return FuzzRequest(method, clean.target, clean.headers, clean.body)
    elif how == "query":
        return FuzzRequest(clean.method, wild.target, clean.headers, clean.body)
    elif how == "chunked":
        return FuzzRequest(
            clean.method, clean.target, clean.headers, clean.body, clean.body is not None
        )
    return FuzzRequest(clean.method, clean.target, tuple(headers.items()), clean.body)


def requests_for(
    route: Route, example: Example, token: str | None = None
) -> st.SearchStrategy[FuzzRequest]:
    """Requests aimed at ``route``: a client's well-formed one with one thing bent, or anything.

    With ``token``, the well-formed ones carry it as a bearer token, and some wild ones too.
    """
    names = re.findall(r"\{(\w+)\}", route.path)
    values = st.tuples(*(path_values(example, name) for name in names))

    def path(found: tuple[str, ...]) -> str:
        given = iter(found)
        return re.sub(r"\{\w+\}", lambda _: next(given), route.path)

    paths = values.map(path)
    parts = _parts(route, example, token)
    wild = st.builds(_request, st.sampled_from((route.method, *METHODS)), paths, parts)
    documented = "&".join(f"{quote(n)}={quote('1.5')}" for n in route.query)
    headers = [("Authorization", f"Bearer {token}")] if token is not None else []
    if route.method in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Type", "application/json"))
        body = well_formed(route, example).map(encode)
    else:
        body = st.none()

    def clean(target: str, data: bytes | None) -> FuzzRequest:
        target = _fit(f"{target}?{documented}" if documented else target)
        return FuzzRequest(route.method, target, tuple(headers), data)

    bent = st.builds(
        _bent,
        st.builds(clean, paths, body),
        st.sampled_from(_BENDS),
        st.sampled_from(METHODS),
        parts,
        st.just(token),
    )
    return st.one_of(bent, bent, wild)


#: bodies of the issue's reports, sent to every route that takes a body (besides Hypothesis's)
KNOWN_BAD_BODIES = (
    b'{"features": {"age": 1e308}, "ground_truth": 150}',
    b'{"id": "\\ud800", "model": "\\ud800", "features": {"\\udfff": 1}, "ground_truth": 1}',
    b'{"features": {"age": 1}, "ground_truth": ' + b"9" * 400 + b', "prediction": 1e400}',
    b'{"model_version": "\\ud800", "force": "\\ud800", "save": 1e999}',
    b"[" * 50_000 + b"]" * 50_000,
    b"",
)


def known_bad_requests(route: Route, example: Example, token: str | None) -> list[FuzzRequest]:
    """The reported bodies, and a body over the limit sent whole and chunked, as a client would."""
    if route.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return []
    names = {} if route.method == "DELETE" else example.names  # removes nothing that exists
    path = re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), ("x",))[0], route.path)
    headers = [("Content-Type", "application/json")]
    headers += [("Authorization", f"Bearer {token}")] if token is not None else []
    found = [FuzzRequest(route.method, path, tuple(headers), body) for body in KNOWN_BAD_BODIES]
    for chunked in (False, True):
        big = _OVERSIZED_BODIES[1]
        found.append(FuzzRequest(route.method, path, tuple(headers), big, chunked))
    return found


def odd_requests(example: Example) -> st.SearchStrategy[FuzzRequest]:
    """Paths no route has, or routes' paths bent: slashes, dots, encodings, case."""
    segment = st.one_of(
        st.sampled_from(["api", "predict", "alive", "dashboard", "static", "docs", "..", "."]),
        text_values().map(lambda t: quote(t[:200])),
    )
    paths = st.tuples(
        st.lists(segment, max_size=5).map(lambda parts: "/" + "/".join(parts)),
        st.sampled_from(["{}", "{}/", "/{}", "{}.upper"]),
    ).map(lambda p: p[0].upper() if p[1] == "{}.upper" else p[1].format(p[0]))
    parts = _parts(Route("GET", "/", source="odd"), example, None)
    return st.builds(_request, st.sampled_from(METHODS), paths, parts)


__all__ = [
    "Example",
    "requests_for",
    "known_bad_requests",
    "odd_requests",
    "encode",
]
