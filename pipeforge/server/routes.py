"""Routes a config adds to the app (``flask_add_url_rules``), and which view is which.

A config is built before its app, so :func:`add_url_rule` only records a
route (a :class:`UrlRule`); :func:`add_rules` adds the recorded routes when
:func:`~pipeforge.server.create_app` builds the app.

The lifecycle views (``fit``, ``update_model_cache``, ``activate``,
``delete``) carry a mark saying what they are (:func:`lifecycle_view`), so
that their guard list (:data:`LIFECYCLE_LISTS`), their OpenAPI entry and
the dashboard's buttons find them under whatever path and endpoint a config
gave them — by the mark, never by comparing with an imported function.
Adding one switches it on; it passes :func:`pipeforge.guards.gate` (no
guard, no app) and the same-site checks of a route that writes.

``/fit``'s list is ``server_fit_decorators`` (Palladium's name for it);
``fit_decorators`` is ``pf-fit``'s, so a web guard never reaches the
command line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .. import guards
from ..errors import ConfigError
from ..factory import decorate, resolve_dotted_name

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "UrlRule",
    "add_url_rule",
    "add_rules",
    "lifecycle_view",
    "lifecycle_name",
    "LIFECYCLE_LISTS",
]

View = TypeVar("View", bound=Callable[..., Any])

_MARK = "pipeforge_lifecycle"

#: the decorator list that guards each lifecycle view (a route may name another)
LIFECYCLE_LISTS = {
    route.name: route.guard_list
    for route in guards.GUARDED_ROUTES
    if route.name
    in ("fit", "update_model_cache", "activate", "delete", "set_traffic", "move_alias")
}


class UrlRule(NamedTuple):
    """A route to add to the app; built by :func:`add_url_rule` in a config."""

    rule: str
    endpoint: str | None
    view_func: Any
    options: dict


def add_url_rule(
    rule: str, endpoint: str | None = None, view_func: Any = None, **options: Any
) -> UrlRule:
    """Describe a route for the ``flask_add_url_rules`` config entry.

    The config is built before the app, so this only records the route;
    :func:`create_app` adds it. ``view_func`` may be a dotted name
    (``pipeforge.server.fit``). ``decorator_list_name`` in ``options``
    overrides the decorator list wrapped around the view.
    """
    return UrlRule(rule, endpoint, view_func, dict(options))


def lifecycle_view(name: str) -> Callable[[View], View]:
    """Mark a view as the lifecycle view ``name`` (its guard list: :data:`LIFECYCLE_LISTS`)."""

    def mark(view: View) -> View:
        setattr(view, _MARK, name)
        return view

    return mark


def lifecycle_name(view: Any) -> str | None:
    """The lifecycle view ``view`` is (``"fit"``, ``"activate"``, ...), or ``None``.

    Only the marked function itself counts: a wrapper that copied the mark
    with ``functools.wraps`` is another view (``inspect.unwrap`` it first to
    ask about the view inside).
    """
    attributes = getattr(view, "__dict__", None)
    if not isinstance(attributes, dict) or "__wrapped__" in attributes:
        return None
    name = attributes.get(_MARK)
    return name if isinstance(name, str) else None


def _write_methods(
    methods: Any, where: str, palladium: bool, config: Mapping[str, Any]
) -> list[str]:
    """A lifecycle route's methods: ones that write (a GET could be sent by any page's <img>).

    A Palladium config keeps what it says (Flask's default is GET).
    """
    listed = [str(m).upper() for m in methods or ["GET"]]
    reading = [m for m in listed if m in ("GET", "HEAD", "OPTIONS")]
    if reading and not palladium:
        raise ConfigError(
            f"a route that changes state must not answer {reading[0]}; give it "
            f"'methods': ['POST']; got {listed}",
            source=guards.source_of(config, where),
            key=f"{where}.methods",
        )
    return listed


def add_rules(
    app: Flask, config: Mapping[str, Any], views: dict[str, Any], *, palladium: bool = False
) -> None:
    """Add the routes of the ``flask_add_url_rules`` entry; ``views`` gets endpoint -> bare view.

    A lifecycle view passes :func:`pipeforge.guards.gate` with its guard
    list (the one the route names, or :data:`LIFECYCLE_LISTS`); any other
    view is wrapped in the list the route names, if any. ``palladium``
    says the app is Palladium's (``palladium.wsgi``); a route naming a
    ``palladium.`` view is in Palladium's form too.
    """
    entries = config.get("flask_add_url_rules") or []
    for index, entry in enumerate(entries):
        where = f"flask_add_url_rules[{index}]"
        if isinstance(entry, dict):
            try:
                entry = add_url_rule(**entry)
            except TypeError as exc:
                raise ConfigError(f"bad route: {exc}", key=where) from None
        if not isinstance(entry, UrlRule):
            raise ConfigError(
                f"expected a route made with __factory__: pipeforge.server.add_url_rule; "
                f"got {type(entry).__name__}",
                key=where,
            )
        view = entry.view_func
        named = view if isinstance(view, str) else ""
        if isinstance(view, str):
            view = resolve_dotted_name(view)
        if not callable(view):
            raise ConfigError(f"view_func must be a function; got {view!r}", key=where)
        options = dict(entry.options)
        lifecycle = lifecycle_name(view)
        list_name = options.pop("decorator_list_name", LIFECYCLE_LISTS.get(lifecycle or ""))
        endpoint = entry.endpoint or getattr(view, "__name__", None) or entry.rule
        if endpoint in app.view_functions:
            endpoint = f"{endpoint}:{entry.rule}"
        if lifecycle is not None:
            palladium_form = (
                palladium
                or getattr(config, "palladium_form", False) is True  # PALLADIUM_CONFIG, palladium.*
                or named.strip().startswith("palladium.")
            )
            methods = _write_methods(options.get("methods"), where, palladium_form, config)
            gate = guards.gate(
                config,
                lifecycle,
                key=where,
                list_name=list_name,
                label=f"{'/'.join(methods)} {entry.rule}",
                palladium=palladium_form,
            )
            wrapped = gate.wrap(view)
        else:
            wrapped = decorate(view, config, list_name) if list_name else view
        try:
            app.add_url_rule(entry.rule, endpoint=endpoint, view_func=wrapped, **options)
        except TypeError as exc:  # an option werkzeug's Rule does not take (``methds``)
            raise ConfigError(
                f"bad route option ({exc}); a route takes rule, endpoint, view_func, "
                "decorator_list_name and werkzeug's Rule options such as methods and defaults",
                key=where,
            ) from None
        views[endpoint] = view
