"""Turning a merged config into objects: ``__python__``, ``__factory__``, ``__mode__``.

After the copies are resolved, three phases run over the config tree:

1. ``__python__`` statements run with the config as ``C`` (and ``environ``,
   ``here``), so they can edit entries before anything is built;
2. ``__factory__`` (alias ``!``) specifications become components, depth
   first, so a component's keyword arguments are built before it; a
   ``__mode__`` on a specification keeps the component only in that mode;
3. ``initialize_component(config)`` runs on each new component, once all of
   an entry's components exist.

Every failure becomes a :class:`~pipeforge.errors.ConfigError` that names the
file and the key path, with the original error as its cause.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from ..errors import ConfigError
from .files import format_path
from .keys import check_keywords

__all__ = ["Builder", "DROPPED", "FACTORY_KEYS", "dropped_by_mode"]

FACTORY_KEYS = ("__factory__", "!")


class _Dropped:
    def __repr__(self) -> str:
        return "DROPPED"


#: what :meth:`Builder.build` gives for a component whose ``__mode__`` is not the config's
DROPPED: Any = _Dropped()


def _modes(wanted: str | list[str] | tuple[str, ...]) -> list[str]:
    return [wanted] if isinstance(wanted, str) else list(wanted)


def dropped_by_mode(node: Any, mode: str | None) -> bool:
    """Whether ``node`` is a component specification kept only in modes other than ``mode``."""
    if mode is None or not isinstance(node, dict) or not any(k in node for k in FACTORY_KEYS):
        return False
    wanted = node.get("__mode__")
    return wanted is not None and mode not in _modes(wanted)


class Builder:
    """Runs the ``__python__``, ``__factory__`` and initialization phases for one config.

    ``config`` is the (merged, copies resolved) mapping the statements see
    as ``C`` and the components get in ``initialize_component``; its
    ``mode`` and ``here`` attributes are used when it has them (a
    :class:`~pipeforge.config.Config` does). ``origin`` maps each top-level
    key to the file that defined it, for error messages. Each component
    built is appended to ``components`` as ``(key path, component)``.
    """

    def __init__(
        self,
        config: MutableMapping[str, Any],
        origin: Mapping[str, str | None],
        components: list[tuple[str, Any]] | None = None,
    ):
        self.config = config
        self.origin = origin
        self.components = [] if components is None else components

    @property
    def mode(self) -> str | None:
        """The mode components are built for (``None``: every component is kept)."""
        return getattr(self.config, "mode", None)

    def source_of(self, path: tuple[str, ...]) -> str | None:
        """The file that defined the top-level entry of ``path``."""
        return self.origin.get(str(path[0])) if path else None

    # -- __python__ ----------------------------------------------------------

    def run_python(
        self, statements: str | list[str] | tuple[str, ...], path: tuple[str, ...]
    ) -> None:
        """Run ``statements`` (a string or a list of lines) with the config as ``C``."""
        key = format_path(path + ("__python__",))
        if isinstance(statements, (list, tuple)):
            statements = "\n".join(statements)
        if not isinstance(statements, str):
            raise ConfigError(
                "__python__ must be a string or list of statements",
                source=self.source_of(path),
                key=key,
            )
        here = getattr(self.config, "here", None)
        try:
            code = compile(statements, f"<__python__ in {format_path(path) or 'config'}>", "exec")
            exec(code, {"C": self.config, "environ": os.environ, "here": here})
        except ConfigError as exc:
            raise exc.located(source=self.source_of(path), key=key)  # noqa: B904 (re-raise, now located)
        except Exception as exc:
            raise ConfigError(
                f"__python__ failed: {type(exc).__name__}: {exc}",
                source=self.source_of(path),
                key=key,
            ) from exc

    def python_phase(self, node: Any, path: tuple[str, ...]) -> None:
        """Run (and remove) every ``__python__`` block inside ``node``, outermost first."""
        if isinstance(node, dict):
            if "__python__" in node:
                self.run_python(node.pop("__python__"), path)
            for k, v in list(node.items()):
                self.python_phase(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.python_phase(v, path + (f"[{i}]",))

    # -- __factory__ ---------------------------------------------------------

    def build(self, node: Any, path: tuple[str, ...]) -> Any:
        """``node`` with its component specifications built, innermost first.

        Dicts are updated in place; gives :data:`DROPPED` for a component
        left out by ``__mode__``.
        """
        if isinstance(node, dict):
            built = {}
            for k, v in node.items():
                value = self.build(v, path + (k,))
                if value is not DROPPED:
                    built[k] = value
            if any(key in built for key in FACTORY_KEYS):
                return self.create(built, path)
            node.clear()
            node.update(built)
            return node
        if isinstance(node, (list, tuple)):
            items = [self.build(v, path + (f"[{i}]",)) for i, v in enumerate(node)]
            items = [item for item in items if item is not DROPPED]
            return items if isinstance(node, list) else type(node)(items)
        return node

    def create(self, spec: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        """The component ``spec`` (a ``__factory__`` and its keyword arguments) describes."""
        from ..factory import resolve_dotted_name

        key = format_path(path)
        source = self.source_of(path)
        spec = dict(spec)
        name = spec.pop("__factory__", None)
        alias = spec.pop("!", None)
        name = name if name is not None else alias
        mode = spec.pop("__mode__", None)
        if mode is not None and self.mode is not None and self.mode not in _modes(mode):
            return DROPPED
        try:
            factory = resolve_dotted_name(name)
        except ConfigError as exc:
            raise exc.located(source=source, key=key + ".__factory__") from exc.__cause__
        if not callable(factory):
            raise ConfigError(
                f"{name!r} is not callable, so it cannot be a __factory__",
                source=source,
                key=key + ".__factory__",
            )
        bad = [k for k in spec if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ConfigError(
                f"{bad[0]!r} is not a valid keyword argument name for {name}",
                source=source,
                key=key,
            )
        check_keywords(factory, spec, name=str(name), key=key, source=source)
        try:
            component = factory(**spec)
        except ConfigError as exc:
            raise exc.located(source=source, key=key)  # noqa: B904 (re-raise, now located)
        except TypeError as exc:
            raise ConfigError(f"cannot create {name}: {exc}", source=source, key=key) from exc
        except Exception as exc:
            raise ConfigError(
                f"cannot create {name}: {type(exc).__name__}: {exc}", source=source, key=key
            ) from exc
        self.components.append((key, component))
        return component

    # -- initialize_component ------------------------------------------------

    def initialize(self, components: list[tuple[str, Any]]) -> None:
        """Call ``initialize_component(config)`` on the freshly built ``components``."""
        for key, component in components:
            init = getattr(component, "initialize_component", None)
            if not callable(init):
                continue
            source = self.source_of((key.split(".")[0].split("[")[0],))
            try:
                init(self.config)
            except ConfigError as exc:
                raise exc.located(source=source, key=key)  # noqa: B904 (re-raise, now located)
            except Exception as exc:
                raise ConfigError(
                    f"initializing the component failed: {type(exc).__name__}: {exc}",
                    source=source,
                    key=key,
                ) from exc
