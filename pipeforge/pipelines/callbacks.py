"""Callbacks: code that runs around a pipeline, its nodes and its ops.

Order for one run: ``before_pipeline``; for each node ``before_node``, the
op callbacks' ``before_op``, the op, ``after_op``, then ``after_node``;
finally ``after_pipeline``. Subclass :class:`PipelineCallback` or
:class:`OpCallback` and override what you need; the config names them by
component (``__factory__``) or by dotted name of a class.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..factory import resolve_dotted_name

if TYPE_CHECKING:
    from .graph import Step
    from .ops import Op
    from .pipeline import Pipeline

__all__ = ["PipelineCallback", "OpCallback", "TimingCallback", "resolve_callbacks"]

logger = logging.getLogger(__name__)


class PipelineCallback:
    """Hooks around a pipeline run and each of its nodes."""

    def before_pipeline(self, pipeline: Pipeline, pipeline_input: Any) -> None:
        """Called once before the first node."""

    def after_pipeline(self, pipeline: Pipeline, pipeline_output: Any) -> None:
        """Called once after the last node, with the pipeline's output."""

    def before_node(self, pipeline: Pipeline, node: Step, inputs: Sequence[Any]) -> None:
        """Called before each node with its input values."""

    def after_node(self, pipeline: Pipeline, node: Step, output: Any) -> None:
        """Called after each node with what its op returned."""


class OpCallback:
    """Hooks around one op's execution, wherever the op is used."""

    def before_op(self, op: Op, inputs: Sequence[Any]) -> None:
        """Called before the op runs."""

    def after_op(self, op: Op, inputs: Sequence[Any], output: Any) -> None:
        """Called after the op ran, with its output."""


class TimingCallback(PipelineCallback, OpCallback):
    """Logs how long pipelines, nodes and ops take, and keeps the last figures.

    Usable as a pipeline callback and as an op callback. ``level`` is the
    logging level name (default ``INFO``); ``last`` maps ``"<pipeline>"``,
    ``"<pipeline>/<node>"`` and ``"op:<op>"`` to the last duration in seconds.
    """

    def __init__(self, level: str = "INFO"):
        self.level = level

    def _state(self) -> tuple[threading.local, dict[str, float], threading.Lock]:
        state = self.__dict__.get("_timing_state")
        if state is None:
            state = self.__dict__.setdefault(
                "_timing_state", (threading.local(), {}, threading.Lock())
            )
        return state

    @property
    def last(self) -> dict[str, float]:
        local, last, lock = self._state()
        with lock:
            return dict(last)

    def _start(self, key: str) -> None:
        local = self._state()[0]
        starts = getattr(local, "starts", None)
        if starts is None:
            starts = local.starts = {}
        starts[key] = time.perf_counter()

    def _stop(self, key: str, what: str) -> None:
        local, last, lock = self._state()
        started = getattr(local, "starts", {}).pop(key, None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        with lock:
            last[key] = elapsed
        level = logging.getLevelName(str(self.level).upper())
        logger.log(
            level if isinstance(level, int) else logging.INFO,
            "%s took %.2f ms",
            what,
            elapsed * 1e3,
        )

    def before_pipeline(self, pipeline: Pipeline, pipeline_input: Any) -> None:
        self._start(pipeline.name)

    def after_pipeline(self, pipeline: Pipeline, pipeline_output: Any) -> None:
        self._stop(pipeline.name, f"pipeline {pipeline.name!r}")

    def before_node(self, pipeline: Pipeline, node: Step, inputs: Sequence[Any]) -> None:
        self._start(f"{pipeline.name}/{node.name}")

    def after_node(self, pipeline: Pipeline, node: Step, output: Any) -> None:
        self._stop(f"{pipeline.name}/{node.name}", f"node {node.name!r} of {pipeline.name!r}")

    def before_op(self, op: Op, inputs: Sequence[Any]) -> None:
        self._start(f"op:{op.op_name}")

    def after_op(self, op: Op, inputs: Sequence[Any], output: Any) -> None:
        self._stop(f"op:{op.op_name}", f"op {op.op_name!r}")


def resolve_callbacks(entries: Any, kind: type, where: str) -> list[Any]:
    """Turn config entries (objects, classes or dotted names) into callback objects."""
    if entries is None:
        return []
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        entries = [entries]
    resolved = []
    for i, entry in enumerate(entries):
        obj = resolve_dotted_name(entry) if isinstance(entry, str) else entry
        if inspect.isclass(obj):
            obj = obj()
        if not isinstance(obj, kind):
            methods = (
                ("before_op", "after_op") if kind is OpCallback else ("before_node", "after_node")
            )
            if not all(callable(getattr(obj, m, None)) for m in methods):
                raise ConfigError(
                    f"callbacks[{i}] of {where} must be a {kind.__name__} (with "
                    f"{' and '.join(methods)}); got {entry!r} instead"
                )
        resolved.append(obj)
    return resolved
