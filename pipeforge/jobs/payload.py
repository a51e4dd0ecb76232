"""What a job carries through Redis: JSON data naming one of the job functions a worker runs.

Nothing read from Redis is unpickled, by the web service or by ``pf-worker``:
every job is written and read with RQ's JSON serializer, and its data is
always the same call, ``run_task(job function name, keyword arguments)``
(:data:`TASK`), with JSON arguments. Whoever can write to Redis can still
plant a job; it runs nothing unless it is that call naming a job function of
the config (:func:`allowed_jobs`: pipeforge's own and the ``jobs`` of the
``job_queue`` entry). A job that is not, such as a pickled one, is reported
as failed with the reason (:func:`refusal`), both by the worker that takes it
and by whoever reads it first (``/alive``, ``GET /jobs/<id>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from ..errors import ConfigError, PipeforgeError

__all__ = [
    "TASK",
    "BUILTIN_JOBS",
    "RefusedJobError",
    "allowed_jobs",
    "job_name",
    "check_arguments",
    "refusal",
    "serializer",
    "job_class",
]

#: What a worker runs for every job: ``run_task(func_name, kwargs)``.
TASK = "pipeforge.jobs.worker.run_task"

#: The job functions of pipeforge itself, which every worker runs.
BUILTIN_JOBS = (
    "pipeforge.jobs.tasks.fit_job",
    "pipeforge.jobs.tasks.grid_search_job",
    "pipeforge.jobs.tasks.refresh_model_caches",
    "pipeforge.pipelines.sync.run_pipeline_job",
)


class RefusedJobError(PipeforgeError):
    """A job read from Redis that a worker does not run (its message says why)."""


def _normal(name: str) -> str:
    return name.strip().replace(":", ".")


def allowed_jobs(extra: Iterable[str] = ()) -> frozenset[str]:
    """The dotted names of the job functions a worker runs: pipeforge's and ``extra``."""
    return frozenset(_normal(name) for name in (*BUILTIN_JOBS, *extra))


def job_name(func: Callable | str) -> str:
    """``module:qualname`` of an importable function (a string is taken as it is)."""
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise ConfigError(
            f"a job for a worker must be an importable function; got {func!r}", key="job_queue"
        )
    return f"{module}:{qualname}"


def check_arguments(kwargs: Mapping[str, Any]) -> None:
    """Raise TypeError naming the first keyword argument of a job that is not JSON data."""
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"the arguments of a job must be JSON data; {key!r} is a {type(value).__name__}"
            ) from exc


def refusal(job: Any, allowed: frozenset[str] | None = None) -> str | None:
    """Why a worker must not run ``job`` (an ``rq.job.Job`` read as JSON), or ``None``.

    ``allowed``: the job functions it may name (``None``: not checked here).
    """
    from rq.exceptions import DeserializationError

    try:
        func_name, instance, args = job.func_name, job.instance, job.args
        kwargs = job.kwargs
    except DeserializationError:
        return (
            "refused: the job's data in Redis is not JSON (pipeforge writes jobs as JSON only; "
            "a pickled job, from pipeforge 0.1 or planted in Redis, is never run)"
        )
    if func_name != TASK or instance is not None:
        return f"refused: the job calls {func_name!r}, not pipeforge's {TASK!r}"
    if (
        not isinstance(args, list)
        or len(args) != 2
        or not isinstance(args[0], str)
        or not isinstance(args[1], dict)
        or kwargs
    ):
        return "refused: the job's arguments are not [job function, keyword arguments]"
    if allowed is not None and _normal(args[0]) not in allowed:
        return (
            f"refused: {args[0]!r} is not a job function of this config "
            "(pipeforge's own jobs and the 'jobs' of the job_queue entry)"
        )
    return None


def serializer() -> Any:
    """RQ's JSON serializer: the only one pipeforge writes or reads jobs with."""
    from rq.serializers import JSONSerializer

    return JSONSerializer


@cache
def job_class() -> type[Any]:
    """The ``rq.job.Job`` pipeforge reads jobs as: it runs only :data:`TASK`, with no callbacks.

    RQ would import and call whatever function, callback or webhook a job in
    Redis names; this class gives a worker's work horse ``run_task`` or a
    :class:`RefusedJobError` (recorded on the job as its error), and no
    callbacks or webhooks, which pipeforge never sets.
    """
    from rq.job import Job

    class PipeforgeJob(Job):
        @property
        def func(self) -> Callable[..., Any]:
            problem = refusal(self)
            if problem is not None:
                meta = self.meta if isinstance(self.meta, dict) else {}
                name = meta.get("name")
                self.meta = {"error": problem, **({"name": name} if isinstance(name, str) else {})}
                self.save_meta()
                raise RefusedJobError(problem)
            from .worker import run_task

            return run_task

        @property
        def success_callback(self) -> None:
            return None

        @property
        def failure_callback(self) -> None:
            return None

        @property
        def stopped_callback(self) -> None:
            return None

        def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
            return None

    return PipeforgeJob
