"""Routes a config adds to the app (``flask_add_url_rules``), and which view is which.

A config is built before its app, so :func:`add_url_rule` only records a
route (a :class:`UrlRule`); :func:`add_rules` adds the recorded routes when
:func:`~pipeforge.server.create_app` builds the app.

The lifecycle views (``fit``, ``update_model_cache``, ``activate``,
``delete``) carry a mark saying what they are (:func:`lifecycle_view`), so
that their decorator list (``fit_decorators``, ...), their OpenAPI entry and
the dashboard's buttons find them under whatever path and endpoint a config
gave them — by the mark, never by comparing with an imported function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..errors import ConfigError
from ..factory import decorate, resolve_dotted_name

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["UrlRule", "add_url_rule", "add_rules", "lifecycle_view", "lifecycle_name"]

View = TypeVar("View", bound=Callable[..., Any])

_MARK = "pipeforge_lifecycle"


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
    """Mark a view as the lifecycle view ``name``; its decorator list is ``<name>_decorators``."""

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


def add_rules(app: Flask, config: Mapping[str, Any], views: dict[str, Any]) -> None:
    """Add the routes of the ``flask_add_url_rules`` entry; ``views`` gets endpoint -> bare view.

    Each view is wrapped in its decorator list: the one the route names, or
    a lifecycle view's own (``fit_decorators``, ...).
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
        if isinstance(view, str):
            view = resolve_dotted_name(view)
        if not callable(view):
            raise ConfigError(f"view_func must be a function; got {view!r}", key=where)
        options = dict(entry.options)
        lifecycle = lifecycle_name(view)
        own_list = f"{lifecycle}_decorators" if lifecycle is not None else None
        list_name = options.pop("decorator_list_name", own_list)
        endpoint = entry.endpoint or getattr(view, "__name__", None) or entry.rule
        if endpoint in app.view_functions:
            endpoint = f"{endpoint}:{entry.rule}"
        wrapped = decorate(view, config, list_name) if list_name else view
        app.add_url_rule(entry.rule, endpoint=endpoint, view_func=wrapped, **options)
        views[endpoint] = view
