"""Palladium's config processing API (``palladium.config``) on pipeforge's own processing.

Palladium made public how it processes a config: ``process_config(*configs,
handlers0=..., handlers1=..., handlers2=...)`` merges dicts already read and
runs three phases of *handlers* over them, each handler an object that is
called as ``handler(name, props)`` for every dict holding its ``key`` and
returns what replaces that dict; ``finish()``, if it has one, runs after the
phase. The handlers for ``__copy__`` (built from the list of configs),
``__python__`` and ``__factory__`` (built from the merged config) are
:class:`CopyHandler`, :class:`PythonHandler` and :class:`ComponentHandler`.

Scripts written for Palladium call ``process_config(config_dict)`` to get a
processed config. Here that is :func:`pipeforge.config.process_config`, the
processing ``load_config`` does (copies, ``__python__``, components,
``__mode__``, ``initialize_component``), with Palladium's rule for relative
paths (the current directory) and the ``logging`` entry applied, as
Palladium does. The handler classes are small adapters with Palladium's
shapes around pipeforge's :class:`~pipeforge.config.copies.CopyResolver` and
:class:`~pipeforge.config.building.Builder`; they come into play when a
script passes handler phases of its own.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from ..config import Config, apply_logging
from ..config import process_config as process_pipeforge_config
from ..config.building import DROPPED, Builder
from ..config.copies import CopyResolver, Layers
from ..config.files import RELATIVE_TO_CWD

__all__ = ["process_config", "CopyHandler", "PythonHandler", "ComponentHandler"]

#: a phase: configs (phase 0) or the merged config (phases 1, 2) -> {key: handler}
HandlerPhase = Callable[[Any], Mapping[str, Callable[[str, Any], Any]]]


class CopyHandler:
    """Palladium's ``__copy__`` handler: ``CopyHandler(configs)(name, props)`` gives the copy.

    ``configs`` are the dicts being merged, oldest first. A ``props`` that
    copies its own place (``'model': {'__copy__': 'model', ...}``) copies the
    definition of an earlier config; ``__default__`` and extra keys work as
    in pipeforge's configs.
    """

    key = "__copy__"

    def __init__(self, configs: Sequence[Mapping[str, Any]]):
        self.configs = list(configs)
        self._layers: Layers = {}
        for config in self.configs:
            for key, value in config.items():
                self._layers.setdefault(key, []).append((None, value))
        self._resolver = CopyResolver(self._layers)

    def __call__(self, name: str, props: dict[str, Any]) -> Any:
        layer, itself = self._place(props)
        return self._resolver.copy(props, (name,), layer, None, self_reference=itself)

    def _place(self, props: dict[str, Any]) -> tuple[int, bool]:
        """(definition, whether ``props`` is what its own target names there)."""
        target = props.get(self.key)
        if not isinstance(target, str) or not target:
            return 0, False
        parts = target.split(".")
        definitions = self._layers.get(parts[0], [])
        for index, (_source, node) in enumerate(definitions):
            for part in parts[1:]:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    break
            else:
                if node is props:
                    return index, True
        return max(len(definitions) - 1, 0), False


class PythonHandler:
    """Palladium's ``__python__`` handler: runs the statements with the config as ``C``."""

    key = "__python__"

    def __init__(self, config: MutableMapping[str, Any]):
        self.config = config
        self._builder = Builder(config, {})

    def __call__(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        self._builder.run_python(props.pop(self.key), (name,))
        return props


class ComponentHandler:
    """Palladium's component handler: builds ``props`` (``__factory__`` or ``!``) into a component.

    ``components`` lists what it built; :meth:`finish` calls
    ``initialize_component(config)`` on each.
    """

    key = "__factory__"

    def __init__(self, config: MutableMapping[str, Any]):
        self.config = config
        self._builder = Builder(config, {})

    @property
    def components(self) -> list[Any]:
        """The components built so far, in order."""
        return [component for _key, component in self._builder.components]

    def __call__(self, name: str, props: dict[str, Any]) -> Any:
        component = self._builder.create(props, (name,))
        return None if component is DROPPED else component

    def finish(self) -> None:
        """Initialize the components built (``initialize_component(config)``)."""
        self._builder.initialize(self._builder.components)


def _copy_handlers(configs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {CopyHandler.key: CopyHandler(configs)}


def _python_handlers(config: MutableMapping[str, Any]) -> dict[str, Any]:
    return {PythonHandler.key: PythonHandler(config)}


def _component_handlers(config: MutableMapping[str, Any]) -> dict[str, Any]:
    handler = ComponentHandler(config)
    return {"__factory__": handler, "!": handler}


def process_config(
    *configs: Mapping[str, Any],
    handlers0: HandlerPhase | None = None,
    handlers1: HandlerPhase | None = None,
    handlers2: HandlerPhase | None = None,
) -> Config:
    """Palladium's ``process_config``: merge ``configs`` (dicts) and process them.

    Without handler phases this is :func:`pipeforge.config.process_config`
    with relative paths taken from the current directory. ``handlers0``
    (called with the list of configs), ``handlers1`` and ``handlers2``
    (called with the merged config) replace the copy, ``__python__`` and
    component phases. The dicts given are left as they are.
    """
    if handlers0 is None and handlers1 is None and handlers2 is None:
        config = process_pipeforge_config(*configs, relative_to=RELATIVE_TO_CWD)
    else:
        layers = [copy.deepcopy(dict(c)) for c in configs]  # handlers edit them in place
        config = Config()
        config.path_base = os.getcwd()
        for layer in layers:
            config.update(layer)
        _run_phase(config, (handlers0 or _copy_handlers)(layers))
        _run_phase(config, (handlers1 or _python_handlers)(config))
        _run_phase(config, (handlers2 or _component_handlers)(config))
    apply_logging(config)
    return config


def _run_phase(config: Config, handlers: Mapping[str, Callable[[str, Any], Any]]) -> None:
    """Hand every dict holding a handler's key to that handler, innermost first; then finish."""
    for key in list(config):
        config[key] = _handled(config[key], str(key), handlers)
    for key, handler in handlers.items():
        if key in config:  # the top level itself, e.g. a __python__ entry
            result = handler("root", config)
            if result is not config:
                config.clear()
                config.update(result)
    finished: set[int] = set()
    for handler in handlers.values():
        if callable(getattr(handler, "finish", None)) and id(handler) not in finished:
            finished.add(id(handler))
            handler.finish()  # type: ignore[attr-defined]


def _handled(node: Any, name: str, handlers: Mapping[str, Callable[[str, Any], Any]]) -> Any:
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _handled(node[key], str(key), handlers)
        for key, handler in handlers.items():
            if isinstance(node, dict) and key in node:
                node = handler(name, node)
        return node
    if isinstance(node, list):
        for index, item in enumerate(node):
            node[index] = _handled(item, str(index), handlers)
        return node
    if isinstance(node, tuple):
        return type(node)(_handled(item, str(i), handlers) for i, item in enumerate(node))
    return node
