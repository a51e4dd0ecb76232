"""No cross-site writes: what a request to a state-changing route must look like.

A browser sends some requests to any site without asking it first (a form,
a plain ``fetch`` with a text body), and sends the user's credentials with
them (basic auth, cookies). So a route that changes state refuses what such
a request looks like, before its guard runs and whatever credentials come
with it:

- a request that says it comes from another site: ``Sec-Fetch-Site:
  cross-site``, or an ``Origin`` whose host is not the one the request was
  sent to (``Host``, or ``X-Forwarded-Host`` from a proxy) and is not listed
  in ``security.trusted_origins`` -> **403**;
- a body a browser may send cross-site without asking: anything but
  ``application/json`` (a form, ``text/plain``, a body without a
  ``Content-Type``) -> **415**. An empty body needs no type. The model
  upload takes its bytes with a type no form can send
  (``application/octet-stream``).

A route of a config in Palladium's form keeps Palladium's request
parameters: a form body and the query string (``model_version`` for
``/activate``), still refusing other sites. The views read their
parameters with :func:`action_params`, which follows the route's form.
Both answers carry the JSON error body (the app's handlers,
:mod:`pipeforge.web`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .. import web
from ..errors import RequestError

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

__all__ = [
    "refuse_cross_site",
    "refuse_body_type",
    "same_site",
    "action_params",
    "origin_of",
    "JSON",
    "BINARY",
    "NO_BODY",
]

View = TypeVar("View", bound=Callable[..., Any])

#: the kinds of body a route takes
JSON, BINARY, NO_BODY = "json", "binary", "none"

#: what a browser sends cross-site without a preflight (the CORS-safelisted types)
_SIMPLE_TYPES = frozenset(
    ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
)
_FORM_TYPES = frozenset(("application/x-www-form-urlencoded", "multipart/form-data"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PALLADIUM_PARAMS = "pipeforge.palladium_params"
_PARAMS = "pipeforge.action_params"


def origin_of(url: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of an origin or URL (``https://a.example:443`` and ``https://a.example``
    are one), or ``None`` when it names none (``null``, garbage)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.scheme not in _DEFAULT_PORTS:
        return None
    return host.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _hosts(request: Request) -> set[str]:
    """The host names (with port) this request was sent to, as the client saw them."""
    seen = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded:  # a browser cannot set it cross-site without a preflight
        seen.add(forwarded.split(",")[0].strip().lower())
    return seen


def _same_host(origin: tuple[str, int | None], hosts: set[str]) -> bool:
    """Whether ``origin`` is one of ``hosts`` (``Host`` header values; no port: 80 or 443)."""
    for seen in hosts:
        try:
            parts = urlsplit(f"//{seen}")
            name, port = parts.hostname, parts.port
        except ValueError:
            continue
        if name == origin[0] and origin[1] in ((port,) if port else _DEFAULT_PORTS.values()):
            return True
    return False


def refuse_cross_site(request: Request, trusted_origins: Iterable[str] = ()) -> None:
    """Raise werkzeug's ``Forbidden`` when ``request`` says it comes from another site."""
    from werkzeug.exceptions import Forbidden

    header = request.headers.get("Origin")
    trusted = {origin_of(o) for o in trusted_origins} - {None}
    if header is not None:
        origin = origin_of(header)
        if origin is not None and origin in trusted:
            return
        if origin is None or not _same_host(origin, _hosts(request)):
            raise Forbidden(
                f"a request from another site ({header[:100]}) cannot change this service; "
                "send it from this service's own pages or without a browser, or list the "
                "origin in security.trusted_origins"
            )
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        raise Forbidden(
            "a request from another site (Sec-Fetch-Site: cross-site) cannot change this "
            "service; send it from this service's own pages or without a browser"
        )


def _has_body(request: Request) -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def refuse_body_type(request: Request, body: str = JSON, *, palladium: bool = False) -> None:
    """Raise werkzeug's ``UnsupportedMediaType`` (415) for a body a browser can send cross-site.

    ``body`` is what the route takes: :data:`JSON`, :data:`BINARY` (any type
    but a form's or text's) or :data:`NO_BODY`; ``palladium`` also takes form
    bodies (Palladium's clients send them).
    """
    from werkzeug.exceptions import UnsupportedMediaType

    if body == NO_BODY:
        return
    mimetype = request.mimetype
    if not mimetype and not _has_body(request):
        return
    if body == BINARY:
        if mimetype and mimetype not in _SIMPLE_TYPES:
            return
        raise UnsupportedMediaType(
            "send the model's bytes with Content-Type: application/octet-stream; "
            f"got {mimetype or 'no Content-Type'}"
        )
    if mimetype and (_is_json(mimetype) or (palladium and mimetype in _FORM_TYPES)):
        return
    accepted = (
        "application/json (or a form, as Palladium's clients send)"
        if palladium
        else ("application/json")
    )
    raise UnsupportedMediaType(
        f"this route takes a JSON body sent with Content-Type: {accepted}; "
        f"got {mimetype or 'a body without Content-Type'}"
    )


def same_site(
    view: View,
    *,
    body: str = JSON,
    palladium: bool = False,
    trusted_origins: Iterable[str] = (),
) -> View:
    """``view`` refusing cross-site requests and bodies a browser sends without asking.

    With ``palladium`` the view's parameters may also come from the query
    string and a form (:func:`action_params`).
    """
    trusted = tuple(trusted_origins)

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from flask import request

        refuse_cross_site(request, trusted)
        refuse_body_type(request, body, palladium=palladium)
        request.environ[_PALLADIUM_PARAMS] = palladium
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]  # same call signature as view


def action_params(names: Iterable[str], request: Request | None = None) -> Mapping[str, Any]:
    """The parameters of a state-changing request, as its route's form says.

    pipeforge's form: the JSON object in the body (nothing: ``{}``); one of
    ``names`` in the query string or a form is a 400 saying where it goes.
    Palladium's form (routes of a Palladium config): the JSON object, then
    the query string and the form fields over it.
    """
    if request is None:
        from flask import request as current

        request = current._get_current_object()  # type: ignore[attr-defined]
    palladium = bool(request.environ.get(_PALLADIUM_PARAMS, False))
    values: dict[str, Any] | None = request.environ.get(_PARAMS)
    if values is None:  # the body is read once; later calls get what it said
        values = {}
        if not palladium or (request.mimetype and _is_json(request.mimetype)):
            values.update(web.read_json(request, expect=dict, default={}))
        if palladium:
            values.update(request.values.to_dict())
        request.environ[_PARAMS] = values
    if palladium:
        return values
    for name in names:
        if name in request.args:
            raise RequestError(
                f"send {name!r} in a JSON body ({{{name!r}: ...}}) with Content-Type: "
                "application/json, not in the query string"
            )
    return values
