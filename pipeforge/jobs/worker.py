"""What a ``pf-worker`` process runs: the background jobs of the ``job_queue`` on this host.

A worker loads the configuration named by ``PIPEFORGE_CONFIG`` once (in
``fit`` mode) and then runs jobs from the RQ queue(s), each in a forked
work horse that inherits the loaded config, so no job pays for parsing it
and no job sees another's state. Every job is :func:`run_task`:
``func(config, **kwargs)`` with the worker's config.

A horse dies with its worker: killing the worker (even with SIGKILL) stops
the job, which then stays without heartbeat and reads as failed (see
:mod:`pipeforge.rq_queue`). Model and op-store writes are transactional, so
a job killed mid-write leaves no partial version behind.

The command itself (options, config checks, messages) is
:mod:`pipeforge.cli.worker`; this module is the machinery it starts, and
what the work horses import (:data:`pipeforge.jobs.rq.TASK`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rq import RQJobQueue

__all__ = ["run_task", "preload", "start_worker"]

logger = logging.getLogger(__name__)


def run_task(func_name: str, kwargs: dict[str, Any]) -> Any:
    """What a worker runs for each job: ``func(config, **kwargs)`` with this worker's config.

    A failure is recorded on the job as the same one-line message the
    thread runner records, and raised again so RQ marks the job failed.
    """
    from ..config import get_config
    from ..factory import resolve_dotted_name
    from .interface import error_message

    try:
        func = resolve_dotted_name(func_name)
        config = get_config(__mode__="fit")
        return func(config, **kwargs)
    except Exception as exc:
        from rq import get_current_job

        job = get_current_job()
        if job is not None:
            if type(exc).__name__ == "JobTimeoutException":
                message = f"the job ran longer than its timeout of {job.timeout} s and was stopped"
            else:
                message = error_message(exc, "the worker's log")
            job.meta["error"] = message
            job.save_meta()
        raise


def _die_with_parent(parent: int) -> None:
    """Make this process receive SIGKILL when ``parent`` dies (Linux), or exit if it is gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the horse may outlive a killed worker
        logger.debug("cannot tie the work horse's life to its worker")
    if os.getppid() != parent:
        os._exit(1)


def _worker_class():
    from rq import Worker

    class PipeforgeWorker(Worker):
        """An RQ worker whose work horses die with it."""

        def execute_job(self, job, queue):
            self._pipeforge_pid = os.getpid()
            return super().execute_job(job, queue)

        def main_work_horse(self, job, queue):
            _die_with_parent(self._pipeforge_pid)
            return super().main_work_horse(job, queue)

    return PipeforgeWorker


def preload(config: Mapping[str, Any]) -> None:
    """Import what jobs need once, here: every forked work horse then starts with it."""
    import importlib

    modules = ["pipeforge.jobs", "pipeforge.training", "pipeforge.persistence", "sqlalchemy"]
    modules += ["pandas", "sklearn.metrics", "sklearn.model_selection", "psycopg"]
    if "pipelines" in config:
        modules += ["pipeforge.pipelines.sync", "pipeforge.pipelines.http"]
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a job that needs it reports the error itself
            logger.debug("not preloading %s: %s", name, exc)


def start_worker(
    queue: RQJobQueue,
    names: Sequence[str],
    *,
    name: str,
    heartbeat: int | None = None,
    burst: bool = False,
    max_jobs: int | None = None,
) -> None:
    """Run the jobs of ``queue``'s queues ``names`` (most urgent first) until stopped.

    ``heartbeat``: seconds between the reports that a job is alive; ``burst``:
    stop once no job waits; ``max_jobs``: stop after that many jobs.
    """
    options = {} if heartbeat is None else {"job_monitoring_interval": heartbeat}
    worker = _worker_class()(
        [queue.queue(n) for n in names], name=name, connection=queue.connection(), **options
    )
    worker.work(burst=burst, max_jobs=max_jobs, logging_level="INFO")
