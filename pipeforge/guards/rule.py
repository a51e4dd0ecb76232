"""The one rule for the routes that change state or hand out models or clients' data.

Every such route is in :data:`GUARDED_ROUTES`: off by default, switched on by
one config key, guarded by one decorator list. When the app is built, each
route switched on passes through :func:`gate`:

- its guard list names at least one decorator (``pipeforge.guards.require_token``,
  or a plain decorator of yours): the route is wrapped in it, after the
  cross-site checks of :mod:`.same_site` (for the routes that write);
- the list is empty but ``security.unguarded`` names the route (a service
  behind a proxy that authenticates): it runs as it is, and the start logs
  one warning saying so;
- the list is empty and the route comes from a config in Palladium's form
  (``palladium.server.fit`` ...): it runs as Palladium ran it, with one
  warning line;
- else the app is not built: one :class:`~pipeforge.errors.ConfigError`
  line naming the key that switched the route on.

The ``security`` config entry::

    security:
      unguarded: [online.events]                   # route names of the table below
      trusted_origins: [https://admin.example.com] # other sites whose pages may write

docs/security.md shows the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config.keys import unknown_key
from ..errors import ConfigError
from ..factory import decorator_list
from .same_site import BINARY, JSON, NO_BODY, refuse_body_type, refuse_cross_site, same_site
from .tokens import SECURITY_ATTRIBUTE

__all__ = [
    "GuardedRoute",
    "GUARDED_ROUTES",
    "Gate",
    "gate",
    "switched_on",
    "security_settings",
    "SecuritySettings",
    "security_of",
    "source_of",
]

logger = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])

_ADDED = "flask_add_url_rules"


@dataclass(frozen=True)
class GuardedRoute:
    """One row of the rule: a route (or a few of one action), its switch and its guard list."""

    name: str  #: what ``security.unguarded`` names
    routes: str  #: method and path, as a user reads them
    switch: str  #: the config key that turns it on (``flask_add_url_rules``: adding it)
    guard_list: str  #: the decorator list that guards it
    writes: bool  #: changes state: JSON bodies only, no cross-site requests
    body: str = JSON  #: what its body is (``json``, ``binary``, ``none``)


GUARDED_ROUTES: tuple[GuardedRoute, ...] = (
    GuardedRoute("fit", "POST /fit", _ADDED, "server_fit_decorators", True),
    GuardedRoute(
        "update_model_cache",
        "POST /update-model-cache",
        _ADDED,
        "update_model_cache_decorators",
        True,
    ),
    GuardedRoute("activate", "POST /activate", _ADDED, "activate_decorators", True),
    GuardedRoute("delete", "POST /delete", _ADDED, "delete_decorators", True),
    GuardedRoute("set_traffic", "POST /traffic", _ADDED, "traffic_decorators", True),
    GuardedRoute("move_alias", "POST /alias", _ADDED, "alias_decorators", True),
    GuardedRoute(
        "online.init", "POST /api/init", "online.allow_init", "online_admin_decorators", True
    ),
    GuardedRoute(
        "online.upload",
        "POST /api/model[/<name>]",
        "online.allow_upload",
        "online_admin_decorators",
        True,
        BINARY,
    ),
    GuardedRoute(
        "online.delete",
        "DELETE /api/model/<name>",
        "online.allow_delete",
        "online_admin_decorators",
        True,
    ),
    GuardedRoute(
        "online.download",
        "GET /api/model[/<name>]",
        "online.allow_download",
        "online_data_decorators",
        False,
        NO_BODY,
    ),
    GuardedRoute(
        "online.events",
        "GET /api/stream/events",
        "online.allow_events",
        "online_data_decorators",
        False,
        NO_BODY,
    ),
    GuardedRoute(
        "pipelines.load",
        "POST /pipelines/<name>/load",
        "pipelines_admin.allow_load",
        "pipelines_admin_decorators",
        True,
    ),
    GuardedRoute(
        "pipelines.save",
        'POST /pipelines/<name>/save, and /pipelines/<name>/main with "save": true',
        "pipelines_admin.allow_save",
        "pipelines_admin_decorators",
        True,
    ),
    GuardedRoute("feedback", "POST /feedback", "feedback.enabled", "feedback_decorators", True),
)

_BY_NAME = {route.name: route for route in GUARDED_ROUTES}
_SECURITY_KEYS = ("unguarded", "trusted_origins")
#: config entries that hold nothing but switches of the table (``online`` has more: its own checks)
_SWITCH_ENTRIES = {"pipelines_admin"}


def source_of(config: Mapping[str, Any], key: str = "") -> str | None:
    """The file that holds the top-level entry of ``key`` (all the config's files if unknown)."""
    origin = getattr(config, "source_of", None)
    if callable(origin) and key:
        found = origin(key.split(".")[0].split("[")[0])
        if isinstance(found, str):
            return found
    return ", ".join(str(s) for s in getattr(config, "sources", None) or ()) or None


def _route(name: str) -> GuardedRoute:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"no guarded route named {name!r}") from None


@dataclass
class SecuritySettings:
    """The ``security`` entry, checked."""

    unguarded: frozenset[str] = frozenset()
    trusted_origins: tuple[str, ...] = ()


def security_settings(config: Mapping[str, Any]) -> SecuritySettings:
    """The config's ``security`` entry (:class:`ConfigError` naming the key when it is wrong)."""
    from .same_site import origin_of

    source = source_of(config, "security")
    entry = config.get("security") or {}
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"must be a mapping with {' and/or '.join(_SECURITY_KEYS)}; got {entry!r}",
            source=source,
            key="security",
        )
    for key in entry:
        if key not in _SECURITY_KEYS:
            raise ConfigError(
                unknown_key(key, _SECURITY_KEYS), source=source, key=f"security.{key}"
            )
    lists = {}
    for key in _SECURITY_KEYS:
        value = entry.get(key) or []
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(
                f"must be a list; got {value!r}", source=source, key=f"security.{key}"
            )
        lists[key] = list(value)
    for index, name in enumerate(lists["unguarded"]):
        if name not in _BY_NAME:
            raise ConfigError(
                unknown_key(name, _BY_NAME, what="route"),
                source=source,
                key=f"security.unguarded[{index}]",
            )
    for index, origin in enumerate(lists["trusted_origins"]):
        if not isinstance(origin, str) or origin_of(origin) is None:
            raise ConfigError(
                f"must be an origin such as 'https://admin.example.com'; got {origin!r}",
                source=source,
                key=f"security.trusted_origins[{index}]",
            )
    return SecuritySettings(frozenset(lists["unguarded"]), tuple(lists["trusted_origins"]))


def switched_on(config: Mapping[str, Any], name: str) -> bool:
    """Whether the config turns the route ``name`` on (its switch is ``true``; default off)."""
    route = _route(name)
    entry_name, _, flag = route.switch.partition(".")
    if not flag:
        raise ValueError(f"{name!r} is switched on by adding it to {route.switch}")
    source = source_of(config, entry_name)
    entry = config.get(entry_name) or {}
    if not isinstance(entry, Mapping):
        raise ConfigError(f"must be a mapping; got {entry!r}", source=source, key=entry_name)
    if entry_name in _SWITCH_ENTRIES:
        known = sorted(
            r.switch.partition(".")[2] for r in GUARDED_ROUTES if r.switch.startswith(entry_name)
        )
        for key in entry:
            if key not in known:
                raise ConfigError(unknown_key(key, known), source=source, key=f"{entry_name}.{key}")
    value = entry.get(flag, False)
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false; got {value!r}", source=source, key=route.switch)
    return value


@dataclass
class Gate:
    """How one switched-on route is guarded: made by :func:`gate` when the app is built."""

    route: GuardedRoute
    list_name: str
    decorators: list[Callable[..., Any]]
    unguarded: bool  #: runs without a guard (``security.unguarded`` or a Palladium config)
    palladium: bool  #: Palladium's request parameters (query string, forms)
    trusted_origins: tuple[str, ...] = field(default=())

    def wrap(self, view: View) -> View:
        """``view`` behind the route's guard list, and for a route that writes, the same-site checks."""
        wrapped: Any = self._guarded(view)
        if self.route.writes:
            wrapped = same_site(
                wrapped,
                body=self.route.body,
                palladium=self.palladium,
                trusted_origins=self.trusted_origins,
            )
        return wrapped

    def admit(self) -> Any:
        """Check the current request as :meth:`wrap` would, inside a view.

        For an action that is part of a route (``"save": true`` of
        ``/pipelines/<name>/main``): ``None`` when the request may go on;
        a refusal is raised (werkzeug's ``HTTPException``) or, from a
        decorator that answers itself, returned as that answer.
        """
        from flask import request

        if self.route.writes:
            refuse_cross_site(request, self.trusted_origins)
            refuse_body_type(request, self.route.body, palladium=self.palladium)
        passed = object()
        answer = self._guarded(lambda: passed)()
        return None if answer is passed else answer

    def _guarded(self, view: View) -> View:
        wrapped: Any = view
        for decorator in reversed(self.decorators):
            wrapped = decorator(wrapped)
        return wrapped


def gate(
    config: Mapping[str, Any],
    name: str,
    *,
    key: str | None = None,
    list_name: str | None = None,
    label: str | None = None,
    palladium: bool = False,
) -> Gate:
    """Decide how the switched-on route ``name`` runs (see the module docstring).

    ``key`` is the key path that switched it on (default: the table's),
    ``list_name`` its guard list when the config names another (a rule's
    ``decorator_list_name``), ``label`` its method and path when they are
    not the table's, ``palladium`` whether it comes from a config in
    Palladium's form. Raises :class:`ConfigError` when it has no guard.
    """
    route = _route(name)
    where = key or route.switch
    source = source_of(config, where)
    label = label or route.routes
    list_name = list_name or route.guard_list
    settings = security_settings(config)
    try:
        decorators = decorator_list(config, list_name)
    except ConfigError as exc:
        raise exc.located(source=source_of(config, list_name)) from None
    for decorator in decorators:
        check_ready = getattr(decorator, "check_ready", None)
        if callable(check_ready):
            try:
                check_ready()
            except ConfigError as exc:
                raise exc.located(source=source_of(config, list_name), key=list_name) from None
    unguarded = not decorators
    if unguarded and name in settings.unguarded:
        logger.warning(
            "%s runs without a guard: security.unguarded names %r (a proxy in front must "
            "authenticate every request to it)",
            label,
            name,
        )
    elif unguarded and palladium:
        logger.warning(
            "%s: %s runs without a guard, as in Palladium; list a guard in %r "
            "(e.g. pipeforge.guards.require_token) or name %r in security.unguarded",
            where,
            label,
            list_name,
            name,
        )
    elif unguarded:
        raise ConfigError(
            f"{label} is switched on without a guard: list one in {list_name!r} (e.g. "
            f"pipeforge.guards.require_token), or name {name!r} in security.unguarded when a "
            "proxy in front authenticates (docs/security.md)",
            source=source,
            key=where,
        )
    return Gate(route, list_name, decorators, unguarded, palladium, settings.trusted_origins)


def security_of(view: Any) -> tuple[str, ...]:
    """The HTTP auth schemes a view's guards ask for (``("bearer",)``), for OpenAPI."""
    schemes = getattr(view, SECURITY_ATTRIBUTE, ())
    return tuple(dict.fromkeys(s for s in schemes if isinstance(s, str)))
