"""From the config's ``ops``, ``pipelines`` and ``op_store`` entries to objects.

The config system has already built every ``__factory__`` component; this
module wires them: it names the ops declared under ``ops``, turns node
dicts into :class:`Node` objects, nests pipelines named by ``pipeline``,
checks every graph, and picks the op store. See docs/pipelines.md.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError
from .graph import Node, as_op
from .ops import Op
from .pipeline import Pipeline
from .store import OpStore

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_pipelines", "build_op_store"]

_NODE_KEYS = {"op", "pipeline", "inputs", "outputs", "mode", "name"}
_PIPELINE_KEYS = {"nodes", "runner", "callbacks", "use_worker"}


def _source(config: Mapping[str, Any]) -> str | None:
    sources = getattr(config, "sources", None)
    return ", ".join(str(s) for s in sources) if sources else None


def build_pipelines(config: Mapping[str, Any]) -> dict[str, Pipeline]:
    """Every pipeline of the config, checked, by name (raises ConfigError)."""
    try:
        return _Builder(config).build()
    except ConfigError as exc:
        exc.located(source=_source(config))
        raise


def build_op_store(config: Mapping[str, Any]) -> OpStore:
    """The ``op_store`` entry, or an OpStore on the model persister's database URL.

    A relative SQLite file is taken from the config's folder, like the model database's.
    """
    store = _op_store(config)
    if getattr(config, "here", None) and "_here" not in store.__dict__:
        store.initialize_component(cast("Config", config))  # only a Config has a folder
    return store


def _op_store(config: Mapping[str, Any]) -> OpStore:
    entry = config.get("op_store")
    if isinstance(entry, OpStore):
        return entry
    if isinstance(entry, Mapping):
        unknown = set(entry) - {"url", "chunk_size", "compress", "table_prefix"}
        if unknown or "url" not in entry:
            raise ConfigError(
                f"op_store needs 'url' (and optionally chunk_size, compress, table_prefix); got keys {sorted(entry)}",
                source=_source(config),
                key="op_store",
            )
        return OpStore(**entry)
    if isinstance(entry, str):
        return OpStore(entry)
    if entry is not None:
        raise ConfigError(
            f"op_store must be {{url: ...}} or an OpStore; got {entry!r} instead",
            source=_source(config),
            key="op_store",
        )
    url = _persister_url(config.get("model_persister"))
    if url is None:
        raise ConfigError(
            "no 'op_store' entry and the model_persister has no database url; add op_store: {url: ...}",
            source=_source(config),
            key="op_store",
        )
    return OpStore(url)


def _persister_url(persister: Any, depth: int = 0) -> str | None:
    if persister is None or depth > 3:
        return None
    url = getattr(persister, "url", None)
    if isinstance(url, str) and "://" in url:
        return url
    for attr in ("impl", "persister", "inner"):
        inner = getattr(persister, attr, None)
        if inner is not None and inner is not persister:
            found = _persister_url(inner, depth + 1)
            if found:
                return found
    return None


class _Builder:
    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self.ops: dict[str, Any] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.building: list[str] = []

    def build(self) -> dict[str, Pipeline]:
        entries = self.config.get("pipelines")
        if entries is None:
            return {}
        if not isinstance(entries, Mapping):
            raise ConfigError(
                f"must map pipeline names to pipelines; got {type(entries).__name__}",
                key="pipelines",
            )
        for name in entries:
            self.pipeline(name)
        for pipeline in self.pipelines.values():
            pipeline.validate()
        return dict(self.pipelines)

    def op(self, name: str, key: str) -> Any:
        if name in self.ops:
            return self.ops[name]
        declared = self.config.get("ops") or {}
        if not isinstance(declared, Mapping):
            raise ConfigError(
                f"must map op names to op components; got {type(declared).__name__}", key="ops"
            )
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"unknown op {name!r} (ops declared under 'ops': {known})", key=key)
        obj = declared[name]
        try:
            op = as_op(obj)
        except ConfigError as exc:
            exc.located(key=f"ops.{name}")
            raise
        if isinstance(op, Op) and op.name is None:
            op = copy.copy(op)
            op.name = name
        self.ops[name] = op
        return op

    def pipeline(self, name: str) -> Pipeline:
        if name in self.pipelines:
            return self.pipelines[name]
        if name in self.building:
            chain = " -> ".join([*self.building[self.building.index(name) :], name])
            raise ConfigError(f"pipelines contain each other: {chain}", key=f"pipelines.{name}")
        entries = self.config["pipelines"]
        if name not in entries:
            known = ", ".join(sorted(entries))
            raise ConfigError(
                f"unknown pipeline {name!r} (pipelines: {known})", key=f"pipelines.{name}"
            )
        entry = entries[name]
        self.building.append(name)
        try:
            if isinstance(entry, Pipeline):
                pipeline = entry
            elif isinstance(entry, Mapping):
                pipeline = self.from_dict(name, entry)
            else:
                raise ConfigError(
                    f"expected a dict with 'nodes'; got {entry!r}", key=f"pipelines.{name}"
                )
            pipeline.graph  # noqa: B018  (checks the DAG now, naming pipeline and node)
        finally:
            self.building.pop()
        self.pipelines[name] = pipeline
        return pipeline

    def from_dict(self, name: str, entry: Mapping[str, Any]) -> Pipeline:
        key = f"pipelines.{name}"
        unknown = set(entry) - _PIPELINE_KEYS
        if unknown:
            raise ConfigError(
                f"unknown keys {sorted(unknown)}; expected some of {sorted(_PIPELINE_KEYS)}",
                key=key,
            )
        nodes = entry.get("nodes")
        if not isinstance(nodes, list | tuple) or not nodes:
            raise ConfigError(
                f"'nodes' must be a non-empty list; got {nodes!r}", key=f"{key}.nodes"
            )
        built = [self.node(name, i, n) for i, n in enumerate(nodes)]
        return Pipeline(
            built,
            name,
            runner=entry.get("runner"),
            callbacks=entry.get("callbacks"),
            use_worker=entry.get("use_worker"),
        )

    def node(self, pipeline: str, index: int, entry: Any) -> Node:
        key = f"pipelines.{pipeline}.nodes.{index}"
        if isinstance(entry, Node):
            return entry
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"pipeline {pipeline!r}: a node must be a dict with 'op'; got {entry!r}", key=key
            )
        unknown = set(entry) - _NODE_KEYS
        if unknown:
            raise ConfigError(
                f"pipeline {pipeline!r}: node {entry.get('name', index)!r} has unknown keys {sorted(unknown)}; "
                f"expected some of {sorted(_NODE_KEYS)}",
                key=key,
            )
        if ("op" in entry) == ("pipeline" in entry):
            raise ConfigError(
                f"pipeline {pipeline!r}: node {index} needs exactly one of 'op' or 'pipeline'",
                key=key,
            )
        if "pipeline" in entry:
            op: Any = self.pipeline(entry["pipeline"])
        elif isinstance(entry["op"], str):
            op = self.op(entry["op"], f"{key}.op")
        else:
            op = entry["op"]
        return Node(
            op,
            entry.get("inputs"),
            entry.get("outputs"),
            name=entry.get("name"),
            mode=entry.get("mode"),
        )
