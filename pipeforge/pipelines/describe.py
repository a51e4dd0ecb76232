"""A pipeline as plain data: its nodes, the values flowing between them, and its op versions.

:func:`describe` is what ``pf-pipeline show`` prints (``--json``), what
:mod:`~pipeforge.pipelines.svg` draws and what the dashboard reads
(``GET /pipelines/<name>/graph``). For each node it says which op version
the pipeline runs ("loaded"), which one the op store holds for the op's
current configuration ("current"), and on which upstream versions the
loaded one was trained.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .graph import PIPELINE_INPUT, PIPELINE_OUTPUT
from .pipeline import Pipeline

if TYPE_CHECKING:
    from .graph import Graph, Step
    from .store import OpStore

__all__ = ["describe", "short_version"]

logger = logging.getLogger(__name__)


def short_version(version: str | None, size: int = 6) -> str:
    """``"a1b2c3d4e5f6.…"`` → ``"a1b2c3.0f1e2d.998877"``: enough to tell versions apart."""
    if not version:
        return "-"
    return ".".join(part[:size] for part in str(version).split("."))


def _kind(step: Step) -> tuple[str, str]:
    """(kind, what it runs) of a step, for people: ``("estimator", "PCA")``."""
    from .ops import DataOp, EstimatorOp, FunctionOp

    op = step.op
    if step.is_pipeline:
        return "pipeline", op.name
    if isinstance(op, EstimatorOp):
        return "estimator", type(op.estimator).__name__
    if isinstance(op, DataOp):
        return "data", type(op.loader).__name__
    if isinstance(op, FunctionOp):
        function = op.function
        name = function if isinstance(function, str) else getattr(function, "__name__", "?")
        return "function", str(name).rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    return "op", type(op).__name__


def _stored(store: OpStore | None, op_name: str) -> list[dict[str, Any]]:
    if store is None:
        return []
    return store.list_versions(op_name)


def _node(
    step: Step, loaded_op: Any, store: OpStore | None, cache: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    kind, runs = _kind(step)
    node: dict[str, Any] = {
        "name": step.name,
        "op": step.op_name,
        "kind": kind,
        "runs": runs,
        "mode": step.mode,
        "inputs": list(step.inputs),
        "outputs": list(step.outputs),
        "trainable": bool(getattr(step.op, "trainable", False)),
    }
    if step.is_pipeline:
        node.update(
            version=None,
            current=None,
            is_current=None,
            trained_on={},
            current_trained_on={},
            stored=0,
        )
        return node
    loaded = str(loaded_op.version)
    major = loaded_op.config_version.major
    if step.op_name not in cache:
        cache[step.op_name] = _stored(store, step.op_name)
    stored = cache[step.op_name]
    if node["trainable"]:
        usable = [
            v for v in stored if v["has_state"] and str(v["config_version"]).split(".")[0] == major
        ]
        current = str(usable[0]["version"]) if usable else None
    else:
        current = str(loaded_op.config_version)
    links = {str(v["version"]): dict(v["trained_on"]) for v in stored}
    node.update(
        version=loaded,
        current=current,
        is_current=None if current is None else loaded == current,
        trained_on=links.get(loaded, {}),
        current_trained_on=links.get(current, {}) if current else {},
        stored=len(stored),
    )
    return node


def _edges(graph: Graph) -> list[dict[str, Any]]:
    """Who feeds whom, one edge per pair of nodes with the value names it carries."""
    edges: dict[tuple[str, str], list[str]] = {}
    for step in graph.steps:
        for name in step.inputs:
            source = PIPELINE_INPUT if name == PIPELINE_INPUT else graph.producer[name].name
            edges.setdefault((source, step.name), []).append(name)
        for name in step.outputs:
            if name == PIPELINE_OUTPUT:
                edges.setdefault((step.name, PIPELINE_OUTPUT), []).append(name)
    return [
        {"source": source, "target": target, "values": values}
        for (source, target), values in edges.items()
    ]


def describe(
    pipeline: Pipeline, store: OpStore | None = None, *, load_error: str | None = None
) -> dict[str, Any]:
    """The pipeline's graph and versions as JSON-ready data.

    ``store`` (an :class:`~pipeforge.pipelines.store.OpStore`) adds what is
    stored: the current version of each op and the "trained on" links;
    without it only the versions in use are known. ``load_error`` is the
    reason the last load was refused, if the caller knows it.
    """
    graph = pipeline.graph
    state = pipeline._state()
    cache: dict[str, list[dict[str, Any]]] = {}
    nodes = [
        _node(step, None if step.is_pipeline else state.ops[step.op_name], store, cache)
        for step in graph.steps
    ]
    for node in nodes:
        if node["kind"] == "pipeline":
            sub = state.subs[node["name"]]
            node["versions"] = sub.versions()
            node["is_loaded"] = sub.is_loaded
    return {
        "pipeline": pipeline.name,
        "is_loaded": pipeline.is_loaded,
        "load_error": load_error,
        "has_input": any(PIPELINE_INPUT in step.inputs for step in graph.steps),
        "has_output": any(PIPELINE_OUTPUT in step.outputs for step in graph.steps),
        "nodes": nodes,
        "edges": _edges(graph),
    }
