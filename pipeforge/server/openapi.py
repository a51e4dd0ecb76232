"""``GET /openapi.json`` and ``GET /docs``: the running service described in OpenAPI 3.1.

The document is generated per request from the app itself: every predict
service with its ``mapping`` as typed query parameters and POST body schema
and its response (class labels, or probabilities by class, read from the
model being served), the error body, ``/alive``, ``/list``, the lifecycle and
pipelines routes the config added, ``/metrics``, and any other route with a
generic entry. ``/docs`` is Swagger UI, vendored in ``pipeforge/server/static``.

Config entry (all keys optional; the defaults shown)::

    'openapi': {'enabled': True, 'path': '/openapi.json', 'docs_path': '/docs',
                'decorator_list_name': 'openapi_decorators'},

``'openapi': False`` turns both routes off; ``'docs_path': None`` only the page.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .. import __version__, guards
from ..config.keys import check_keys
from ..errors import ConfigError
from ..factory import decorate
from . import openapi_lifecycle as lifecycle_ops
from . import openapi_operations as ops

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.routing import Rule

#: what :func:`describe_route` takes: operations by method, a callable making them, or None
Operations = dict[str, Any] | Callable[[], dict[str, Any] | None] | None

__all__ = ["openapi_document", "register_openapi", "describe_route", "settings"]

logger = logging.getLogger(__name__)

_DEFAULTS = {
    "enabled": True,
    "path": "/openapi.json",
    "docs_path": "/docs",
    "decorator_list_name": "openapi_decorators",
}
_ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js.gz", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css.gz", "text/css"),
    "docs.js": ("docs.js", "text/javascript"),
}


def settings(
    config: Mapping[str, Any], key: str = "openapi", defaults: Mapping[str, Any] = _DEFAULTS
) -> dict[str, Any] | None:
    """The ``key`` config entry merged over ``defaults``; ``None`` when it is switched off."""
    value = config.get(key, True)
    if value is None or value is True:
        value = {}
    if value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be true, false or a dict of settings; got {value!r}", key=key)
    check_keys(value, defaults, key=key, config=config, what="setting")
    merged = {**defaults, **value}
    if not merged.get("enabled", True):
        return None
    for name in ("path", "docs_path"):
        path = merged.get(name)
        if (
            name in defaults
            and path is not None
            and not (isinstance(path, str) and path.startswith("/"))
        ):
            raise ConfigError(
                f"must be a path starting with '/'; got {path!r}", key=f"{key}.{name}"
            )
    return merged


def _openapi_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app`` (a :func:`pipeforge.server.create_app` app)."""
    state = app.extensions["pipeforge"]
    config = state.config
    meta = state.service_metadata
    model = ops.served_model(state)
    services = dict(state.services)
    pipelines = app.extensions.get("pipeforge_pipelines")
    pipeline_names = sorted(getattr(pipelines, "pipelines", None) or {})
    described = app.extensions.get("pipeforge_openapi_ops", {})
    paths: dict[str, dict] = {}
    secured: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        endpoint = rule.endpoint
        if endpoint == "static":
            continue
        methods = {m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS")}
        found = None
        if endpoint.startswith("predict:") and endpoint[8:] in services:
            found = ops.predict_operations(endpoint[8:], services[endpoint[8:]], model)
        elif endpoint == "alive":
            found = ops.alive_operations()
        elif endpoint == "list":
            found = ops.list_operations()
        elif endpoint == "job":
            found = lifecycle_ops.job_operations()
        elif endpoint in state.views:
            found = lifecycle_ops.lifecycle_operations(state.views[endpoint], methods)
        elif endpoint.startswith("pipelines") and pipeline_names:
            found = lifecycle_ops.pipeline_operations(endpoint, pipeline_names)
        if found is None and endpoint in described:
            found = described[endpoint]
            found = found() if callable(found) else found
            if found is None:
                continue  # described as hidden
        if found is None:
            found = ops.generic_operations(rule, app.view_functions.get(endpoint))
        path = paths.setdefault(_openapi_path(rule), {})
        schemes = guards.security_of(app.view_functions.get(endpoint))
        for method, operation in found.items():
            if schemes:
                operation = _secured(operation, schemes)
                secured.update(schemes)
            path.setdefault(method, operation)
    components = ops.components()
    if secured:
        components["securitySchemes"] = {
            _SCHEMES[scheme][0]: _SCHEMES[scheme][1] for scheme in sorted(secured)
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": str(meta.get("service_name") or "pipeforge service"),
            "version": str(meta.get("service_version") or "unversioned"),
            "description": (
                f"Generated by pipeforge {__version__} from the running configuration "
                f"({', '.join(getattr(config, 'sources', []) or ['in memory'])})."
            ),
        },
        "paths": paths,
        "components": components,
    }


#: HTTP auth schemes a guard may ask for -> its name and object in ``components.securitySchemes``
_SCHEMES = {"bearer": ("bearerAuth", {"type": "http", "scheme": "bearer"})}


def _secured(operation: dict[str, Any], schemes: tuple[str, ...]) -> dict[str, Any]:
    """``operation`` saying which guard it is behind (``security``) and its 401 answer."""
    known = [_SCHEMES[s][0] for s in schemes if s in _SCHEMES]
    if not known:
        return operation
    responses = {**operation.get("responses", {}), **ops.error_responses(401)}
    return {**operation, "security": [{name: []} for name in known], "responses": responses}


# -- the routes --------------------------------------------------------------------


def describe_route(app: Flask, endpoint: str, operations: Operations) -> None:
    """Give ``endpoint`` its own entry in the document (instead of a generic one).

    ``operations`` maps lower-case methods to OpenAPI operation objects, or is
    a callable returning that mapping when the document is built; ``None``
    leaves the route out of the document.
    """
    app.extensions.setdefault("pipeforge_openapi_ops", {})[endpoint] = operations


@cache
def _asset(name: str) -> bytes:
    return (resources.files("pipeforge.server") / "static" / name).read_bytes()


def register_openapi(app: Flask, config: Mapping[str, Any]) -> None:
    """Add ``/openapi.json`` and ``/docs`` to ``app`` as the ``openapi`` config entry says."""
    options = settings(config)
    if options is None:
        return
    from flask import Response, request

    from .. import web

    list_name = options["decorator_list_name"]
    openapi_url = options["path"]

    def openapi_json():
        """This document: the running service in OpenAPI 3.1."""
        from flask import current_app

        return web.json_response(openapi_document(current_app))

    app.add_url_rule(
        openapi_url, endpoint="openapi", view_func=decorate(openapi_json, config, list_name)
    )
    describe_route(
        app,
        "openapi",
        {
            "get": {
                "operationId": "openapi",
                "tags": ["service"],
                "summary": "This document",
                "responses": {
                    "200": ops.json_answer({"type": "object"}, "the OpenAPI 3.1 document")
                },
            }
        },
    )
    docs = options.get("docs_path")
    if not docs:
        return
    docs = docs.rstrip("/") or "/docs"
    title = str((config.get("service_metadata") or {}).get("service_name") or "pipeforge")

    def docs_page():
        """The API browser (Swagger UI, served from the package)."""
        from html import escape

        page = _asset("docs.html").decode("utf-8")
        page = page.format(
            title=escape(title),
            assets=escape(docs + "/assets"),
            openapi_url=escape(request.script_root + openapi_url),
        )
        return Response(page, mimetype="text/html")

    def docs_asset(name: str):
        from werkzeug.exceptions import NotFound

        if name not in _ASSETS:
            raise NotFound(f"no asset {name!r}")
        filename, mimetype = _ASSETS[name]
        data = _asset(filename)
        headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
        if filename.endswith(".gz"):
            if "gzip" in request.accept_encodings:
                headers["Content-Encoding"] = "gzip"
            else:
                data = gzip.decompress(data)
        return Response(data, mimetype=mimetype, headers=headers)

    app.add_url_rule(docs, endpoint="docs", view_func=decorate(docs_page, config, list_name))
    app.add_url_rule(
        docs + "/assets/<name>",
        endpoint="docs_asset",
        view_func=decorate(docs_asset, config, list_name),
    )
    describe_route(app, "docs_asset", None)
    describe_route(
        app,
        "docs",
        {
            "get": {
                "operationId": "docs",
                "tags": ["service"],
                "summary": "This API in a browsable page",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
    )
