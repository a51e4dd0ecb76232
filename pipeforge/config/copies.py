"""``__copy__``: an entry that is a deep copy of another one, with keys of its own on top.

Copies are resolved against the *layers* of a config, not against the merged
result: each top-level key keeps the list of its definitions, one per config
file that has it, in order. That is what lets a later file extend an entry
of an earlier one by copying itself (``'model': {'__copy__': 'model', ...}``
means "the ``model`` of the files before this one"), and what makes a copy
see the entry as the later files left it otherwise.

``__default__`` is the value taken when the target does not exist. Problems
(a target that is missing, a cycle, extra keys on a copy of a non-dict) are
raised as :class:`~pipeforge.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ConfigError
from .files import format_path

__all__ = ["CopyResolver", "Layers"]

#: key -> its definitions, oldest first, each with the name of the config it came from
Layers = dict[str, list[tuple[str | None, Any]]]


class CopyResolver:
    """Resolves ``__copy__`` against the layers of the configs being merged.

    :meth:`entry` gives a top-level entry with every copy in it resolved;
    :meth:`copy` resolves one ``{'__copy__': ...}`` node (Palladium's
    ``CopyHandler`` uses it for one node at a time).
    """

    def __init__(self, layers: Layers):
        self.layers = layers
        self._resolving: list[tuple[tuple[str, ...], int]] = []

    def entry(self, key: str) -> Any:
        """The newest definition of ``key``, with its copies resolved (new dicts and lists)."""
        source, raw = self.layers[key][-1]
        return self.walk(raw, (key,), len(self.layers[key]) - 1, source)

    def walk(self, node: Any, path: tuple[str, ...], layer: int, source: str | None) -> Any:
        """``node`` (found at ``path`` in definition ``layer``) with its copies resolved.

        Dicts, lists and tuples are rebuilt, so the configs read stay as they were.
        """
        if isinstance(node, dict):
            if "__copy__" in node:
                return self.copy(node, path, layer, source)
            return {k: self.walk(v, path + (k,), layer, source) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            items = [self.walk(v, path + (f"[{i}]",), layer, source) for i, v in enumerate(node)]
            return items if isinstance(node, list) else type(node)(items)
        return node

    def copy(
        self,
        node: dict[str, Any],
        path: tuple[str, ...],
        layer: int,
        source: str | None,
        self_reference: bool | None = None,
    ) -> Any:
        """Resolve the ``{'__copy__': target, ...}`` ``node`` found at ``path``.

        A copy of the node's own path (``self_reference``; by default told
        from ``path``) takes the definition of the layer before ``layer``.
        """
        target = node["__copy__"]
        where = format_path(path) + ".__copy__"
        if not isinstance(target, str) or not target:
            raise ConfigError(
                f"__copy__ must be a dotted path like 'model' or 'a.b'; got {target!r}",
                source=source,
                key=where,
            )
        parts = tuple(target.split("."))
        if self_reference is None:
            self_reference = path[: len(parts)] == parts
        try:
            value = self._lookup(parts, layer - 1 if self_reference else None, source, where)
        except LookupError:
            if "__default__" not in node:
                hint = (
                    " (a copy of itself needs an earlier config file that defines it)"
                    if self_reference
                    else ""
                )
                raise ConfigError(
                    f"__copy__ target {target!r} not found{hint}", source=source, key=where
                ) from None
            value = self.walk(node["__default__"], path + ("__default__",), layer, source)
        value = copy.deepcopy(value)
        overrides = {
            k: self.walk(v, path + (k,), layer, source)
            for k, v in node.items()
            if k not in ("__copy__", "__default__")
        }
        if overrides:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"__copy__ target {target!r} is a {type(value).__name__}, so it cannot take extra keys "
                    f"({', '.join(map(repr, overrides))})",
                    source=source,
                    key=where,
                )
            value.update(overrides)
        return value

    def _lookup(
        self, parts: tuple[str, ...], layer: int | None, source: str | None, where: str
    ) -> Any:
        key = parts[0]
        if key not in self.layers:
            raise LookupError(key)
        layers = self.layers[key]
        index = len(layers) - 1 if layer is None else layer
        if index < 0:
            raise LookupError(key)
        marker = (parts, index)
        if marker in self._resolving:
            chain = " -> ".join(
                ".".join(p) for p, _ in self._resolving[self._resolving.index(marker) :]
            )
            raise ConfigError(
                f"cycle in __copy__: {chain} -> {'.'.join(parts)}", source=source, key=where
            )
        self._resolving.append(marker)
        try:
            layer_source, node = layers[index]
            node = self.walk(node, (key,), index, layer_source) if len(parts) == 1 else node
            for depth, part in enumerate(parts[1:], start=1):
                if isinstance(node, dict) and "__copy__" in node:
                    node = self.copy(node, parts[:depth], index, layer_source)
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise LookupError(part)
                if depth == len(parts) - 1:
                    node = self.walk(node, parts, index, layer_source)
            return node
        finally:
            self._resolving.pop()
