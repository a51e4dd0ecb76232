"""Pipelines: run a DAG of nodes, save what training produced, load what was saved.

A pipeline keeps its ops in one immutable snapshot that is swapped whole:

* a run uses the snapshot it started with; ops that train in the run are
  copied first, and the trained copies replace the old ones only when the
  whole run succeeded;
* a load builds a complete new snapshot from the op store, checks every
  version link, and swaps it in only when all checks pass, so a refused
  load leaves the pipeline serving exactly what it served before.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, PipeforgeError, VersionError
from .callbacks import OpCallback, PipelineCallback, resolve_callbacks
from .graph import PIPELINE_INPUT, PIPELINE_OUTPUT, Graph, Step
from .runners import BaseRunner, get_runner
from .store import OpRecord, OpStore

__all__ = ["Pipeline", "PipelineRun", "NodeError"]

logger = logging.getLogger(__name__)


class NodeError(PipeforgeError):
    """An op failed while its node ran; says which pipeline and node."""

    def __init__(self, pipeline: str, node: str, original: BaseException):
        self.pipeline = pipeline
        self.node = node
        self.original = original
        super().__init__(
            f"pipeline {pipeline!r}, node {node!r} failed: {type(original).__name__}: {original}"
        )


@dataclasses.dataclass(frozen=True)
class _State:
    ops: dict[str, Any]
    subs: dict[str, Pipeline]
    loaded: bool = False
    unsaved: dict[str, tuple[Any, list[tuple[str, str]]]] = dataclasses.field(default_factory=dict)


class Pipeline:
    """A named DAG of :class:`~pipeforge.pipelines.graph.Node` objects.

    ``runner`` is a runner object or ``"sequential"``/``"concurrent"``;
    ``callbacks`` are :class:`PipelineCallback` objects (or dotted names);
    ``use_worker`` makes HTTP calls run as background jobs by default.
    """

    def __init__(
        self,
        nodes: Sequence[Any],
        name: str,
        *,
        runner: Any = None,
        callbacks: Sequence[Any] | None = None,
        use_worker: bool | None = None,
    ):
        self.nodes = nodes
        self.name = name
        self.runner = runner
        self.callbacks = callbacks
        self.use_worker = use_worker

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}>"

    # -- structure ------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The checked graph; raises ConfigError for an invalid one."""
        graph = self.__dict__.get("_graph")
        if graph is None:
            if not isinstance(self.name, str) or not self.name:
                raise ConfigError(
                    f"a pipeline's name must be a non-empty string; got {self.name!r}"
                )
            graph = Graph(self.name, self.nodes)
            callbacks = resolve_callbacks(
                self.callbacks, PipelineCallback, f"pipeline {self.name!r}"
            )
            op_callbacks = {
                name: resolve_callbacks(op.callbacks, OpCallback, f"op {name!r}")
                for name, op in graph.ops.items()
            }
            runner = get_runner(self.runner, f"runner of pipeline {self.name!r}")
            self.__dict__.update(
                _pipeline_callbacks=callbacks, _op_callbacks=op_callbacks, _runner=runner
            )
            graph = self.__dict__.setdefault("_graph", graph)
        return graph

    def validate(self) -> None:
        """Check the graph and every nested pipeline now (raises ConfigError)."""
        for step in self.graph.steps:
            if step.is_pipeline:
                step.op.validate()
            else:
                step.op.config_version  # noqa: B018  (computes and checks the versioning)

    def copy(self) -> Pipeline:
        """A pipeline with the same nodes and a state of its own (for nesting)."""
        return Pipeline(
            self.nodes,
            self.name,
            runner=self.runner,
            callbacks=self.callbacks,
            use_worker=self.use_worker,
        )

    def _lock(self) -> threading.RLock:
        return self.__dict__.setdefault("_pipeline_lock", threading.RLock())

    def _state(self) -> _State:
        state = self.__dict__.get("_current")
        if state is None:
            graph = self.graph
            with self._lock():
                state = self.__dict__.get("_current")
                if state is None:
                    state = _State(
                        ops={name: copy.deepcopy(op) for name, op in graph.ops.items()},
                        subs={s.name: s.op.copy() for s in graph.steps if s.is_pipeline},
                    )
                    self.__dict__["_current"] = state
        return state

    @property
    def is_loaded(self) -> bool:
        """Whether a load succeeded (a refused load does not change it)."""
        return self._state().loaded

    def versions(self) -> dict[str, str]:
        """``{node name: version string}`` of the ops currently in use."""
        state = self._state()
        result = {}
        for step in self.graph.steps:
            if step.is_pipeline:
                for key, value in state.subs[step.name].versions().items():
                    result[f"{step.name}/{key}"] = value
            else:
                result[step.name] = str(state.ops[step.op_name].version)
        return result

    def op_names(self) -> list[str]:
        """Every op name used, nested pipelines included."""
        names = list(self.graph.ops)
        for step in self.graph.steps:
            if step.is_pipeline:
                names.extend(n for n in step.op.op_names() if n not in names)
        return names

    # -- running --------------------------------------------------------------
    def run(self, pipeline_input: Any = None, *, runner: BaseRunner | None = None) -> Any:
        """Run the pipeline and return what reached ``__pipeline_output__``."""
        graph = self.graph
        runner = runner or self.__dict__["_runner"]
        run = PipelineRun(self, self._state(), pipeline_input)
        for callback in self.__dict__["_pipeline_callbacks"]:
            _call(callback, "before_pipeline", self, pipeline_input)
        runner.execute(run)
        output = run.values.get(PIPELINE_OUTPUT)
        for callback in self.__dict__["_pipeline_callbacks"]:
            _call(callback, "after_pipeline", self, output)
        self._commit_run(run, graph)
        return output

    def _commit_run(self, run: PipelineRun, graph: Graph) -> None:
        trained = [n for n, before in run.before.items() if run.ops[n].version != before]
        if not trained:
            return
        updates = {}
        for name in trained:
            upstream: list[str] = []
            for step in graph.steps:
                if step.op_name == name and step.mode in ("fit", "fit_predict"):
                    upstream.extend(u for u in graph.upstream[step.name] if u not in upstream)
            links = [(up, str(run.ops[up].version)) for up in upstream]
            updates[name] = (run.ops[name], links)
            logger.info(
                "pipeline %r trained op %r: version %s", self.name, name, run.ops[name].version
            )
        with self._lock():
            state = self._state()
            self.__dict__["_current"] = dataclasses.replace(
                state,
                ops={**state.ops, **{n: op for n, (op, _) in updates.items()}},
                unsaved={**state.unsaved, **updates},
            )

    # -- op store -------------------------------------------------------------
    def save(self, store: OpStore) -> list[str]:
        """Store what this pipeline trained (state and links) and its ops' versions.

        Returns ``"op@version"`` for each version written or confirmed.
        """
        state = self._state()
        records = []
        for name, op in state.ops.items():
            if name in state.unsaved:
                trained_op, links = state.unsaved[name]
                records.append(
                    OpRecord(
                        name,
                        str(trained_op.version),
                        str(trained_op.config_version),
                        state=trained_op.get_state(),
                        has_state=True,
                        links=links,
                    )
                )
            elif not op.trainable:
                records.append(OpRecord(name, str(op.version), str(op.config_version)))
        store.save(records)
        with self._lock():
            current = self._state()
            left = {n: v for n, v in current.unsaved.items() if state.unsaved.get(n) is not v}
            self.__dict__["_current"] = dataclasses.replace(current, unsaved=left)
        saved = [f"{r.op_name}@{r.version}" for r in records]
        for sub in state.subs.values():
            saved.extend(sub.save(store))
        return saved

    def load(self, store: OpStore, pinned: Mapping[str, str] | None = None) -> dict[str, str]:
        """Take each op's newest stored version; refuse with VersionError if unlinked.

        ``pinned`` (``{op name: version}``, as :meth:`op_versions` gives) takes
        those versions instead of the newest: what another process loaded.
        On refusal nothing changes: the pipeline keeps serving what it had.
        """
        self._commit_load(self._prepare_load(store, pinned or {}))
        return self.versions()

    def op_versions(self) -> dict[str, str]:
        """``{op name: version string}`` of the ops in use, nested pipelines included."""
        state = self._state()
        result = {}
        for sub in state.subs.values():
            result.update(sub.op_versions())
        result.update({name: str(op.version) for name, op in state.ops.items()})
        return result

    def _stored_row(self, store: OpStore, name: str, op, pinned: Mapping[str, str]):
        if name not in pinned:
            return store.newest(name, op.config_version.major, with_state=True)
        row = store.version_row(name, pinned[name])
        if row is None or not row["has_state"]:
            raise VersionError(
                f"pipeline {self.name!r} cannot be loaded: version {pinned[name]} of op "
                f"{name!r} is not in the op store"
            )
        return row

    def _prepare_load(self, store: OpStore, pinned: Mapping[str, str]):
        graph = self.graph
        predict_ops = {
            s.op_name
            for s in graph.steps
            if not s.is_pipeline and s.op.trainable and s.mode == "predict"
        }
        ops = {}
        for name, template in graph.ops.items():
            op = copy.deepcopy(template)
            if op.trainable:
                row = self._stored_row(store, name, op, pinned)
                if row is not None:
                    from .versioning import Version

                    op.set_state(store.read_state(row), Version.parse(row["version"]))
                elif name in predict_ops:
                    raise VersionError(self._missing_message(store, name, op))
            ops[name] = op
        for step in graph.steps:
            if step.is_pipeline or not step.op.trainable or step.mode != "predict":
                continue
            down = ops[step.op_name]
            for up_name in graph.upstream[step.name]:
                up = ops[up_name].version
                if not store.has_link(step.op_name, str(down.version), up_name, up.major):
                    raise VersionError(
                        f"pipeline {self.name!r} cannot be loaded: op {step.op_name!r} (version {down.version}) "
                        f"was not trained on the current major version of op {up_name!r} (version {up}); "
                        f"retrain {step.op_name!r} (run a pipeline that fits it, with --save) and load again"
                    )
        subs = {
            s.name: self._state().subs[s.name]._prepare_load(store, pinned)
            for s in graph.steps
            if s.is_pipeline
        }
        return ops, subs

    def _missing_message(self, store: OpStore, name: str, op) -> str:
        prefix = f"pipeline {self.name!r} cannot be loaded: op {name!r}"
        if store.newest(name, with_state=True) is not None:
            return (
                f"{prefix} has trained versions, but none for its current configuration "
                f"(its major config version is {op.config_version.major}); retrain {name!r} and save it"
            )
        return f"{prefix} has never been trained and saved; run a pipeline that fits {name!r} with --save"

    def _commit_load(self, prepared) -> None:
        ops, subs = prepared
        with self._lock():
            state = self._state()
            for name, sub_prepared in subs.items():
                state.subs[name]._commit_load(sub_prepared)
            self.__dict__["_current"] = _State(ops=ops, subs=state.subs, loaded=True, unsaved={})


class PipelineRun:
    """The values and ops of one run; runners call :meth:`execute` per step."""

    def __init__(self, pipeline: Pipeline, state: _State, pipeline_input: Any):
        self.pipeline = pipeline
        self.graph = pipeline.graph
        self.values: dict[str, Any] = {PIPELINE_INPUT: pipeline_input}
        self.ops = dict(state.ops)
        self.subs = state.subs
        fitting = {
            s.op_name
            for s in self.graph.steps
            if not s.is_pipeline and s.mode in ("fit", "fit_predict")
        }
        self.before = {}
        for name in fitting:
            self.ops[name] = copy.deepcopy(self.ops[name])
            self.before[name] = self.ops[name].version

    def execute(self, step: Step) -> None:
        pipeline = self.pipeline
        inputs = [self.values[name] for name in step.inputs]
        for callback in pipeline.__dict__["_pipeline_callbacks"]:
            _call(callback, "before_node", pipeline, step, inputs)
        try:
            if step.is_pipeline:
                sub_input = inputs[0] if len(inputs) == 1 else (tuple(inputs) if inputs else None)
                output = self.subs[step.name].run(sub_input)
            else:
                callbacks = pipeline.__dict__["_op_callbacks"].get(step.op_name, ())
                output = self.ops[step.op_name].invoke(step.mode, inputs, callbacks)
        except ConfigError as exc:
            exc.located(key=f"pipelines.{pipeline.name}.nodes.{step.index}")
            raise
        except PipeforgeError:
            raise
        except Exception as exc:
            raise NodeError(pipeline.name, step.name, exc) from exc
        for callback in pipeline.__dict__["_pipeline_callbacks"]:
            _call(callback, "after_node", pipeline, step, output)
        self._assign(step, output)

    def _assign(self, step: Step, output: Any) -> None:
        outputs = step.outputs
        if len(outputs) == 1:
            self.values[outputs[0]] = output
        elif len(outputs) > 1:
            if not isinstance(output, tuple | list) or len(output) != len(outputs):
                got = f"a {type(output).__name__}" + (
                    f" of length {len(output)}" if isinstance(output, tuple | list) else ""
                )
                raise NodeError(
                    self.pipeline.name,
                    step.name,
                    ValueError(
                        f"its {len(outputs)} outputs {list(outputs)} need a tuple of {len(outputs)} values; got {got}"
                    ),
                )
            for name, value in zip(outputs, output, strict=True):
                self.values[name] = value


def _call(callback: Any, method: str, *args: Any) -> None:
    function = getattr(callback, method, None)
    if function is not None:
        function(*args)
