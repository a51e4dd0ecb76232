"""What a ``pf-worker`` process runs: the background jobs of the ``job_queue`` on this host.

A worker loads the configuration named by ``PIPEFORGE_CONFIG`` once (in
``fit`` mode) and then runs jobs from the RQ queue(s), each in a forked
work horse that inherits the loaded config, so no job pays for parsing it
and no job sees another's state. Every job is :func:`run_task`:
``func(config, **kwargs)`` with the worker's config. Jobs are read as JSON
and run only when they name a job function of the config; any other job,
such as a pickled one, fails with the reason and the worker goes on (see
:mod:`pipeforge.jobs.payload`).

A worker always stops when asked or, with ``--burst``, when the queues are
empty: the thread that listens for RQ's commands is given a bounded time to
end (:meth:`unsubscribe` below), whatever the pair of RQ and redis-py.

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
import inspect
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rq import RQJobQueue

__all__ = ["run_task", "preload", "start_worker"]

logger = logging.getLogger(__name__)

#: Seconds a stopping worker waits for the thread that listens for RQ's commands
_LISTENER_WAIT = 2.0


def run_task(func_name: str, kwargs: dict[str, Any]) -> Any:
    """What a worker runs for each job: ``func(config, **kwargs)`` with this worker's config.

    ``func_name`` must be a job function of the config (pipeforge's own or
    one of the ``jobs`` of its ``job_queue``); the result is returned as
    JSON data. A failure is recorded on the job as the same one-line message
    the thread runner records, and raised again so RQ marks the job failed.
    """
    from ..config import get_config
    from ..factory import resolve_dotted_name
    from ..web import to_jsonable
    from .interface import error_message, job_queue
    from .payload import RefusedJobError, allowed_jobs
    from .rq import RQJobQueue

    try:
        config = get_config(__mode__="fit")
        queue = job_queue(config)
        allowed = queue.allowed_jobs() if isinstance(queue, RQJobQueue) else allowed_jobs()
        if not isinstance(func_name, str) or func_name.replace(":", ".") not in allowed:
            raise RefusedJobError(
                f"refused: {func_name!r} is not a job function of this config "
                "(pipeforge's own jobs and the 'jobs' of the job_queue entry)"
            )
        func = resolve_dotted_name(func_name)
        return to_jsonable(func(config, **kwargs))
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
    from redis.exceptions import RedisError
    from rq import Worker

    class PipeforgeWorker(Worker):
        """An RQ worker whose work horses die with it and that always stops."""

        def execute_job(self, job, queue):
            self._pipeforge_pid = os.getpid()
            return super().execute_job(job, queue)

        def main_work_horse(self, job, queue):
            _die_with_parent(self._pipeforge_pid)
            return super().main_work_horse(job, queue)

        def unsubscribe(self):
            """Stop listening for commands, within a bounded time.

            RQ sends UNSUBSCRIBE, then stops redis-py's listening thread and
            waits for it. Since redis-py 8.2 ``stop()`` itself waits, without
            a bound, and a thread that saw the reply to UNSUBSCRIBE before the
            stop waits up to a minute for a subscription that never comes, so
            ``pf-worker --burst`` hung in about one run of four. Here the
            thread is told to stop first, so the reply ends it at once; a
            thread still alive after a short wait is left behind (it is a
            daemon thread: it ends with the process).
            """
            pubsub, thread = self.pubsub, self.pubsub_thread
            if thread is None or pubsub is None:
                return
            self.log.info("Worker %s: unsubscribing from %s", self.name, self.pubsub_channel_name)
            if "timeout" in inspect.signature(thread.stop).parameters:
                thread.stop(timeout=0)  # redis-py 8.2: clears the flag, waits no more
            else:
                thread.stop()  # older redis-py: only clears the flag
            try:
                pubsub.unsubscribe()  # its reply wakes the thread, which now ends
            except RedisError as exc:
                self.log.debug("Worker %s: unsubscribing failed: %s", self.name, exc)
            thread.join(_LISTENER_WAIT)
            if thread.is_alive():
                self.log.debug("Worker %s: leaving the command listener behind", self.name)
            else:
                pubsub.close()
            self.pubsub_thread = None

    return PipeforgeWorker


def preload(config: Mapping[str, Any]) -> None:
    """Import what the config's jobs need once, here: every forked work horse starts with it.

    Fits and grid searches need the training modules, a model store its
    database driver; a worker for jobs of your own alone imports neither.
    """
    import importlib

    modules = ["pipeforge.jobs", "pipeforge.web"]
    if any(key in config for key in ("model", "model_persister", "dataset_loader_train")):
        modules += ["pipeforge.training", "pipeforge.persistence", "sqlalchemy", "pandas"]
        modules += ["sklearn.metrics", "sklearn.model_selection", "psycopg"]
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
    from .payload import job_class, serializer

    options = {} if heartbeat is None else {"job_monitoring_interval": heartbeat}
    worker = _worker_class()(
        [queue.queue(n) for n in names],
        name=name,
        connection=queue.connection(),
        serializer=serializer(),
        job_class=job_class(),
        **options,
    )
    worker.work(burst=burst, max_jobs=max_jobs, logging_level="INFO")
