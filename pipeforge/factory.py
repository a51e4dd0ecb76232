"""Turning dotted names from config files into Python objects.

Palladium configs name ``palladium.x.y``; those names resolve to the
pipeforge objects that stand in for them (:mod:`pipeforge.palladium_compat.names`),
so an unmodified Palladium config runs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from .errors import ConfigError

__all__ = ["resolve_dotted_name", "decorator_list", "decorate", "Partial"]


def resolve_dotted_name(name: str) -> Any:
    """Import ``name`` (``pkg.mod.attr`` or ``pkg.mod:attr``) and return the object.

    Raises :class:`ConfigError` saying what could not be found.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"expected a dotted name like 'package.module.attr'; got {name!r}")
    name = name.strip()
    head = name.split(".", 1)[0].split(":", 1)[0]
    if head == "palladium" and name != head:
        from .palladium_compat.names import resolve_dotted

        try:
            return resolve_dotted(name, resolve_dotted_name)
        except (ImportError, AttributeError) as exc:  # the message names ``name``
            raise ConfigError(str(exc)) from exc
    if ":" in name:
        module_name, _, attr_path = name.partition(":")
        module = _import(module_name, name)
        return _walk(module, attr_path.split("."), name)
    parts = name.split(".")
    # Import the longest importable module prefix, then walk attributes.
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this very module does not exist" means: try a shorter prefix.
            if exc.name is not None and module_name.startswith(exc.name):
                continue
            raise ConfigError(f"cannot import {name!r}: {exc}") from exc
        except Exception as exc:
            raise ConfigError(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from exc
        return _walk(module, parts[cut:], name)
    raise ConfigError(f"cannot import {name!r}: no module named {parts[0]!r}")


def _import(module_name: str, full: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import {full!r}: {type(exc).__name__}: {exc}") from exc


def _walk(obj: Any, attrs: Iterable[str], full: str) -> Any:
    for attr in attrs:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ConfigError(
                f"cannot import {full!r}: {getattr(obj, '__name__', obj)!r} has no attribute {attr!r}"
            ) from None
    return obj


def decorator_list(config: Mapping[str, Any], list_name: str) -> list[Callable[..., Any]]:
    """The decorators the config entry ``list_name`` names, outermost first.

    The entry is a list of dotted names or callables (a component such as
    ``pipeforge.guards.TokenGuard`` made with ``__factory__``); one name
    alone counts as a list of one. A missing or empty entry is no decorators.
    """
    names = config.get(list_name) or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple):
        raise ConfigError(
            f"must be a list of decorators (dotted names); got {type(names).__name__}",
            key=list_name,
        )
    decorators = []
    for index, entry in enumerate(names):
        decorator = resolve_dotted_name(entry) if isinstance(entry, str) else entry
        if not callable(decorator):
            raise ConfigError(
                f"{entry!r} is not a decorator (not callable)", key=f"{list_name}[{index}]"
            )
        decorators.append(decorator)
    return decorators


def decorate(
    func: Callable[..., Any], config: Mapping[str, Any], list_name: str
) -> Callable[..., Any]:
    """Wrap ``func`` in the decorators named by the config entry ``list_name``.

    The entry is a list of dotted names (or callables); the first one listed
    is the outermost, as if written top to bottom above ``def``. A missing
    entry means no decorators (see :func:`decorator_list`).
    """
    wrapped = func
    for decorator in reversed(decorator_list(config, list_name)):
        wrapped = decorator(wrapped)
    return wrapped


def Partial(  # noqa: N802 (Palladium's name, used as a __factory__)
    func: Callable[..., Any] | str, **kwargs: Any
) -> functools.partial[Any]:
    """``func`` with ``kwargs`` bound: a function a config can pass where one is expected.

    ``func`` may be a dotted name. Palladium's ``palladium.util.Partial``.
    """
    if isinstance(func, str):
        func = resolve_dotted_name(func)
    if not callable(func):
        raise ConfigError(f"Partial needs a function or its dotted name; got {func!r}")
    bound = functools.partial(func, **kwargs)
    functools.update_wrapper(bound, func)
    return bound
