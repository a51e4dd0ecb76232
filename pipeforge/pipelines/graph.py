"""Nodes and the checks that make a list of nodes a valid DAG.

A node runs one op (or a whole pipeline) on named inputs and writes named
outputs. ``__pipeline_input__`` is what the caller passes in and
``__pipeline_output__`` is what the pipeline returns. Every mistake in the
wiring is a :class:`~pipeforge.errors.ConfigError` naming the pipeline and
the node, found before anything runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..interfaces import DatasetLoader
from .ops import MODES, DataOp, EstimatorOp, FunctionOp, Op

__all__ = ["Node", "PIPELINE_INPUT", "PIPELINE_OUTPUT", "Graph", "as_op"]

PIPELINE_INPUT = "__pipeline_input__"
PIPELINE_OUTPUT = "__pipeline_output__"


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{what} must be a name or a list of names; got {value!r} instead")


class Node:
    """One step of a pipeline: ``op`` applied to ``inputs``, written to ``outputs``.

    ``op`` is an :class:`~pipeforge.pipelines.ops.Op`, a pipeline, or for
    convenience an estimator, a dataset loader or a callable (wrapped in the
    matching op). ``mode`` overrides a trainable op's own mode here only.
    """

    def __init__(
        self,
        op: Any,
        inputs: str | Sequence[str] | None = None,
        outputs: str | Sequence[str] | None = None,
        *,
        name: str | None = None,
        mode: str | None = None,
    ):
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.name = name
        self.mode = mode

    def __repr__(self) -> str:
        return f"<Node {self.name!r} {self.inputs!r} -> {self.outputs!r}>"


def as_op(obj: Any, mode: str | None = None) -> Any:
    """The op for a node's ``op`` entry (pipelines and ops pass through)."""
    from .pipeline import Pipeline

    if isinstance(obj, Op | Pipeline):
        return obj
    if isinstance(obj, DatasetLoader):
        return DataOp(obj)
    if hasattr(obj, "fit"):
        return EstimatorOp(obj, mode=mode or "predict")
    if callable(obj):
        return FunctionOp(obj)
    raise ConfigError(
        f"a node's op must be an op, a pipeline, an estimator or a callable; got {obj!r}"
    )


@dataclasses.dataclass
class Step:
    """A node checked and normalised: what the runners and node callbacks work with."""

    index: int
    name: str
    op: Any  # an Op or a Pipeline
    op_name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    mode: str | None
    is_pipeline: bool


class Graph:
    """The checked structure of a pipeline: steps in a runnable order, and who feeds whom."""

    def __init__(self, pipeline_name: str, nodes: Sequence[Any]):
        from .pipeline import Pipeline

        self.pipeline_name = pipeline_name
        steps: list[Step] = []
        if not isinstance(nodes, Sequence) or isinstance(nodes, str) or not nodes:
            raise ConfigError(
                f"pipeline {pipeline_name!r} must have a non-empty list of nodes; got {nodes!r}"
            )
        for i, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise self._error(i, f"node {i}", f"expected a node; got {node!r} instead")
            where = f"node {node.name or i}"
            try:
                op = as_op(node.op, node.mode)
                is_pipeline = isinstance(op, Pipeline)
                op_name = op.name if is_pipeline else op.op_name
                inputs = _names(node.inputs, "inputs")
                outputs = _names(node.outputs, "outputs")
            except ConfigError as exc:
                raise self._error(i, where, exc.problem) from exc
            where = f"node {node.name or op_name!r}"
            mode = node.mode or getattr(op, "mode", None)
            if getattr(op, "trainable", False) and mode not in MODES:
                raise self._error(
                    i, where, f"mode must be one of {', '.join(MODES)}; got {mode!r} instead"
                )
            steps.append(
                Step(i, node.name or op_name, op, op_name, inputs, outputs, mode, is_pipeline)
            )
        self.steps = steps
        self._check_names()
        self.producer = self._check_wiring()
        self.order = self._check_cycles()
        self.ops = self._check_ops()
        self.upstream = {s.name: self._upstream(s) for s in steps}

    def _error(self, index: int, node: str, problem: str) -> ConfigError:
        return ConfigError(
            f"pipeline {self.pipeline_name!r}, {node}: {problem}",
            key=f"pipelines.{self.pipeline_name}.nodes.{index}",
        )

    def _check_names(self) -> None:
        seen: dict[str, int] = {}
        for s in self.steps:
            if s.name in seen:
                raise self._error(
                    s.index,
                    f"node {s.name!r}",
                    f"another node (number {seen[s.name]}) has the same name; give one a 'name'",
                )
            seen[s.name] = s.index

    def _check_wiring(self) -> dict[str, Step]:
        producer: dict[str, Step] = {}
        for s in self.steps:
            for out in s.outputs:
                if out == PIPELINE_INPUT:
                    raise self._error(
                        s.index, f"node {s.name!r}", f"{PIPELINE_INPUT} cannot be an output"
                    )
                if out in producer:
                    raise self._error(
                        s.index,
                        f"node {s.name!r}",
                        f"output {out!r} is already written by node {producer[out].name!r}; two nodes cannot write one name",
                    )
                producer[out] = s
        consumed: set[str] = set()
        for s in self.steps:
            for name in s.inputs:
                if name == PIPELINE_OUTPUT:
                    raise self._error(
                        s.index, f"node {s.name!r}", f"{PIPELINE_OUTPUT} cannot be an input"
                    )
                if name != PIPELINE_INPUT and name not in producer:
                    known = ", ".join(sorted(producer)) or "none"
                    raise self._error(
                        s.index,
                        f"node {s.name!r}",
                        f"input {name!r} is written by no node (outputs written: {known}; or use {PIPELINE_INPUT})",
                    )
                consumed.add(name)
        for s in self.steps:
            for out in s.outputs:
                if out != PIPELINE_OUTPUT and out not in consumed:
                    raise self._error(
                        s.index,
                        f"node {s.name!r}",
                        f"output {out!r} is never consumed by another node (nor named {PIPELINE_OUTPUT})",
                    )
        return producer

    def _check_cycles(self) -> list[Step]:
        deps = {
            s.name: {self.producer[i].name for i in s.inputs if i in self.producer}
            for s in self.steps
        }
        order: list[Step] = []
        done: set[str] = set()
        remaining = list(self.steps)
        while remaining:
            ready = [s for s in remaining if deps[s.name] <= done]
            if not ready:
                names = ", ".join(repr(s.name) for s in remaining)
                first = remaining[0]
                raise self._error(
                    first.index, f"node {first.name!r}", f"the nodes {names} form a cycle"
                )
            for s in ready:
                order.append(s)
                done.add(s.name)
            remaining = [s for s in remaining if s.name not in done]
        self.deps = deps
        return order

    def _check_ops(self) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        for s in self.steps:
            if s.is_pipeline:
                continue
            other = ops.get(s.op_name)
            if (
                other is not None
                and other is not s.op
                and other.config_version != s.op.config_version
            ):
                raise self._error(
                    s.index,
                    f"node {s.name!r}",
                    f"two different ops are named {s.op_name!r}; give one another 'name'",
                )
            ops.setdefault(s.op_name, s.op)
        return ops

    def _upstream(self, step: Step) -> list[str]:
        """Op names ``step`` depends on: walk back through ops that do not train, skipping sources."""
        found: list[str] = []
        seen: set[str] = set()
        stack = [i for i in step.inputs if i in self.producer]
        while stack:
            producer = self.producer[stack.pop()]
            if producer.name in seen:
                continue
            seen.add(producer.name)
            if producer.is_pipeline:
                continue
            if not producer.inputs:
                continue  # sources (data ops) are not version-checked: data may come from anywhere
            if producer.op_name != step.op_name and producer.op_name not in found:
                found.append(producer.op_name)
            if not producer.op.trainable:
                stack.extend(i for i in producer.inputs if i in self.producer)
        return found
