"""What the dashboard page may call in this app: found in the app's URL map, not guessed.

A lifecycle route counts when its view is marked as ``activate`` (or
``delete``, ``fit``, ``update_model_cache``, ``move_alias``, ``set_traffic``; see
:func:`pipeforge.server.routes.lifecycle_name`), under whatever path the
config gave it and behind whatever decorators (the app records the
undecorated views of ``flask_add_url_rules``), or when its endpoint has one
of those names.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..routes import lifecycle_name

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["page_config"]

_ONLINE = {
    "models": "/api/models",
    "metrics": "/api/metrics",
    "stats": "/api/stats",
    "stream_metrics": "/api/stream/metrics",
    "stream_events": "/api/stream/events",
}


_LIFECYCLE = ("activate", "delete", "fit", "update_model_cache", "move_alias", "set_traffic")


def _lifecycle(app: Flask) -> dict[str, dict[str, str]]:
    undecorated = getattr(app.extensions.get("pipeforge"), "views", {})
    found: dict[str, dict[str, str]] = {}
    for rule in app.url_map.iter_rules():
        view: Any = undecorated.get(rule.endpoint) or app.view_functions.get(rule.endpoint)
        try:
            name = lifecycle_name(inspect.unwrap(view))
        except ValueError:  # a __wrapped__ cycle
            name = None
        if name not in _LIFECYCLE:
            name = None
        if name is None and rule.endpoint in _LIFECYCLE:
            name = rule.endpoint
        if name is not None and name not in found:
            method = "POST" if "POST" in (rule.methods or ()) else "GET"
            found[name] = {"path": rule.rule, "method": method}
    return found


def page_config(
    app: Flask, config: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """The routes the page can use (paths below the app's mount point) and its settings."""
    from flask import request

    from ... import __version__

    root = request.script_root
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    by_endpoint = {rule.endpoint: rule.rule for rule in rules.values()}

    def path(rule: str | None) -> str | None:
        return None if rule is None else root + rule

    routes: dict[str, Any] = {
        "list": path("/list") if "/list" in rules else None,
        "release": path(by_endpoint.get("release")),
        "alive": path("/alive") if "/alive" in rules else None,
        "metrics": path(by_endpoint.get("metrics")),
        "pipelines": None,
        "online": None,
    }
    for name, route in _lifecycle(app).items():
        routes[name] = {"path": path(route["path"]), "method": route["method"]}
    if "/available_pipelines" in rules and "/pipelines/<name>/graph" in rules:
        routes["pipelines"] = {
            "available": path("/available_pipelines"),
            "graph": path("/pipelines/{name}/graph"),
        }
    if "/api/models" in rules:
        routes["online"] = {
            key: path(rule) if rule in rules else None for key, rule in _ONLINE.items()
        }
    return {
        "pipeforge_version": __version__,
        "service_metadata": dict(config.get("service_metadata") or {}),
        "auth_header": options["auth_header"],
        "refresh_seconds": options["refresh_seconds"],
        "routes": routes,
    }
