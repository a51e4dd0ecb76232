"""Runners decide in which order, and on which threads, a pipeline's nodes run.

:class:`SequentialRunner` runs the nodes one after the other in a fixed
topological order. :class:`ThreadRunner` runs every node as soon as its
inputs exist, so independent branches (two data loaders, two models fed
by one transform) run at the same time in a thread pool. Both go through
``Pipeline.run``, which handles callbacks, training and versions.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..factory import resolve_dotted_name

if TYPE_CHECKING:
    from .pipeline import Pipeline, PipelineRun

__all__ = ["BaseRunner", "SequentialRunner", "ThreadRunner", "get_runner"]


class BaseRunner:
    """Subclass and implement :meth:`execute` to run a pipeline's steps your way."""

    def run(self, pipeline: Pipeline, pipeline_input: Any = None) -> Any:
        """Run ``pipeline`` on ``pipeline_input`` with this runner and return its output."""
        return pipeline.run(pipeline_input, runner=self)

    def execute(self, run: PipelineRun) -> None:
        """Execute every step of ``run`` (a ``PipelineRun``), each after its inputs."""
        raise NotImplementedError


class SequentialRunner(BaseRunner):
    """One node after the other, in the calling thread."""

    def execute(self, run: PipelineRun) -> None:
        for step in run.graph.order:
            run.execute(step)


class ThreadRunner(BaseRunner):
    """Independent branches at the same time, in a ``ThreadPoolExecutor``.

    ``max_workers`` bounds the threads (default: as many as there are nodes,
    at most 8). The first failing node stops the run: nodes not started yet
    are cancelled and the error is raised.
    """

    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers

    def execute(self, run: PipelineRun) -> None:
        graph = run.graph
        if self.max_workers is not None and (
            not isinstance(self.max_workers, int) or self.max_workers < 1
        ):
            raise ConfigError(
                f"parameter 'max_workers' of ThreadRunner must be a positive int; got {self.max_workers!r} instead"
            )
        workers = self.max_workers or min(8, len(graph.steps))
        done: set[str] = set()
        pending = list(graph.order)
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="pf-pipeline"
        ) as pool:
            running: dict[concurrent.futures.Future[None], str] = {}
            while pending or running:
                for step in [s for s in pending if graph.deps[s.name] <= done]:
                    pending.remove(step)
                    running[pool.submit(run.execute, step)] = step.name
                finished, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in finished:
                    name = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        for other in running:
                            other.cancel()
                        raise error
                    done.add(name)


_NAMED = {"sequential": SequentialRunner, "threads": ThreadRunner, "concurrent": ThreadRunner}


def get_runner(spec: Any, where: str = "runner") -> BaseRunner:
    """A runner from a config value: ``None``, a name, a dotted class name or a runner object."""
    if spec is None:
        return SequentialRunner()
    if isinstance(spec, str):
        if spec in _NAMED:
            return _NAMED[spec]()
        spec = resolve_dotted_name(spec)
    if isinstance(spec, type):
        spec = spec()
    if not callable(getattr(spec, "execute", None)):
        raise ConfigError(
            f"{where} must be 'sequential', 'concurrent' or a runner object; got {spec!r} instead"
        )
    return spec
