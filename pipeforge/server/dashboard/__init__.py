"""The web dashboard: one page that shows models, pipelines, online models and the service.

The page (``/dashboard``, and ``/`` when no other route has it) is static
HTML, CSS and plain JavaScript shipped in ``static/``: no CDN, no build
step. It reads the JSON routes the app already has -- ``/list``,
``/release`` (the Release panel, ``static/release.js``), ``/alive``, ``/metrics``, the pipelines routes (with
``/pipelines/<name>/graph`` for the pictures) and the online ``/api/*``
routes -- through their own decorator lists, so a token-protected route
stays protected: the page sends the token the user typed (kept in the
browser tab's ``sessionStorage``) in the header the config names.

``/dashboard/config.json`` tells the page which of those routes this app
has (activate and delete buttons only appear when ``/activate`` and
``/delete`` are enabled, the Promote button when ``/alias`` is). The page, its files and ``config.json`` are
wrapped in ``dashboard_decorators``; a browser cannot add headers to the
page it loads, so only use checks there that it passes by itself (basic
auth, network rules). Config entry, the defaults shown
(``'dashboard': False`` turns it off)::

    'dashboard': {'enabled': True, 'path': '/dashboard', 'root': True,
                  'auth_header': None, 'refresh_seconds': 5,
                  'decorator_list_name': 'dashboard_decorators'},
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config.keys import check_keys
from ...errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["register_dashboard", "settings", "STATIC"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")

_DEFAULTS = {
    "enabled": True,
    "path": "/dashboard",
    "root": True,
    "auth_header": None,
    "refresh_seconds": 5,
    "decorator_list_name": "dashboard_decorators",
}

# The page loads nothing but its own files and this app's JSON: say so to the browser too.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def settings(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``dashboard`` entry over its defaults; ``None`` when switched off."""
    value = config.get("dashboard", True)
    if value is None or value is True:
        value = {}
    if value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"must be true, false or a dict of settings; got {value!r}", key="dashboard"
        )
    check_keys(value, _DEFAULTS, key="dashboard", config=config, what="setting")
    merged = {**_DEFAULTS, **value}
    if not merged["enabled"]:
        return None
    path = merged["path"]
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise ConfigError(
            f"must be a path starting with '/' (not '/' itself); got {path!r}", key="dashboard.path"
        )
    header = merged["auth_header"]
    if header is not None and (not isinstance(header, str) or not header.strip()):
        raise ConfigError(
            f"must be an HTTP header name such as 'X-Token'; got {header!r}",
            key="dashboard.auth_header",
        )
    seconds = merged["refresh_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 1:
        raise ConfigError(
            f"must be a number of seconds >= 1; got {seconds!r}", key="dashboard.refresh_seconds"
        )
    merged["path"] = path.rstrip("/")
    return merged


_FILES = {
    "dashboard.js": "text/javascript",
    "release.js": "text/javascript",
    "dashboard.css": "text/css",
}


@functools.cache
def _read(filename: str) -> bytes:
    return (STATIC / filename).read_bytes()


def _page_html() -> str:
    return _read("index.html").decode("utf-8")


def _static_response(filename: str):
    """One of the page's few files (known names only, so no path ever reaches the disk)."""
    from flask import Response
    from werkzeug.exceptions import NotFound

    mimetype = _FILES.get(filename)
    if mimetype is None:
        raise NotFound(f"the dashboard has no file {filename!r}")
    response = Response(_read(filename), mimetype=mimetype, headers=_HEADERS)
    response.cache_control.max_age = 300
    return response


def register_dashboard(app: Flask, config: Mapping[str, Any]) -> None:
    """Add the dashboard's page, files and ``config.json`` to ``app`` (unless switched off)."""
    options = settings(config)
    if options is None:
        return
    from ...factory import decorate
    from .routes import page_config

    path = options["path"]
    list_name = options["decorator_list_name"]

    def dashboard_page():
        """The dashboard (static HTML; its data comes from the JSON routes)."""
        from flask import Response, request

        html = _page_html().replace("%BASE%", escape(request.script_root + path))
        return Response(html, mimetype="text/html", headers=_HEADERS)

    def dashboard_file(filename: str):
        """The dashboard's scripts and styles."""
        return _static_response(filename)

    def dashboard_config():
        """Which routes the page can use here, and how to send a token."""
        from ... import web

        return web.json_response(page_config(app, config, options))

    page = decorate(dashboard_page, config, list_name)
    app.add_url_rule(path, endpoint="dashboard", view_func=page)
    app.add_url_rule(f"{path}/", endpoint="dashboard_slash", view_func=page)
    app.add_url_rule(
        f"{path}/static/<path:filename>",
        endpoint="dashboard_static",
        view_func=decorate(dashboard_file, config, list_name),
    )
    app.add_url_rule(
        f"{path}/config.json",
        endpoint="dashboard_config",
        view_func=decorate(dashboard_config, config, list_name),
    )
    if options["root"] and not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        app.add_url_rule("/", endpoint="dashboard_root", view_func=page)
    _describe(app)


def _describe(app) -> None:
    """In /openapi.json: config.json only; the page and its files are no API."""
    from ..openapi import describe_route

    for endpoint in ("dashboard", "dashboard_slash", "dashboard_static", "dashboard_root"):
        describe_route(app, endpoint, None)
    answer = {
        "type": "object",
        "required": ["pipeforge_version", "routes", "auth_header", "refresh_seconds"],
        "properties": {
            "pipeforge_version": {"type": "string"},
            "service_metadata": {"type": "object"},
            "auth_header": {"type": ["string", "null"]},
            "refresh_seconds": {"type": "number"},
            "routes": {"type": "object"},
        },
    }
    describe_route(
        app,
        "dashboard_config",
        {
            "get": {
                "operationId": "dashboard_config",
                "tags": ["service"],
                "summary": "Which routes the dashboard page can use in this service",
                "responses": {
                    "200": {
                        "description": "the routes and settings",
                        "content": {"application/json": {"schema": answer}},
                    }
                },
            }
        },
    )
