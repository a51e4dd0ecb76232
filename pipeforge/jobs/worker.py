"""``pf-worker``: run the background jobs of the ``job_queue`` on this host.

A worker loads the configuration named by ``PIPEFORGE_CONFIG`` once (in
``fit`` mode) and then runs jobs from the RQ queue(s), each in a forked
work horse that inherits the loaded config, so no job pays for parsing it
and no job sees another's state. Every job is :func:`run_task`:
``func(config, **kwargs)`` with the worker's config.

A horse dies with its worker: killing the worker (even with SIGKILL) stops
the job, which then stays without heartbeat and reads as failed (see
:mod:`pipeforge.rq_queue`). Model and op-store writes are transactional, so
a job killed mid-write leaves no partial version behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
from collections.abc import Sequence
from typing import Any

from ..cli.run import positive_int_option
from ..errors import ConfigError

__all__ = ["main", "run_task"]

logger = logging.getLogger(__name__)

DOC = """Run background jobs (fits, grid searches, cache updates, pipeline runs) from Redis.

Uses the 'job_queue' entry of the configuration named by PIPEFORGE_CONFIG
(an RQ queue on a Redis server, see docs/scaling-out.md) and everything the
jobs need: 'dataset_loader_train', 'model', 'model_persister', 'pipelines'...
Start as many workers, on as many hosts, as you like; each runs one job at
a time. Ctrl-C (or SIGTERM) lets the current job finish, twice stops it.

Usage:
  pf-worker [options] [<queue>...]

Arguments:
  <queue>                 Queue names to take jobs from, most urgent first
                          (default: the job_queue's own queue).

Options:
  --burst                 Run the jobs waiting now, then exit.
  --name=<name>           The worker's name (default: <host>.<pid>).
  --heartbeat=<seconds>   How often the worker reports that its job is alive;
                          keep it well below the queue's 'abandoned_after'
                          [default: 5].
  --max-jobs=<n>          Exit after running this many jobs.
  --debug                 Show tracebacks of errors.
  -h --help               Show this screen.
"""


def run_task(func_name: str, kwargs: dict[str, Any]) -> Any:
    """What a worker runs for each job: ``func(config, **kwargs)`` with this worker's config.

    A failure is recorded on the job as the same one-line message the
    thread runner records, and raised again so RQ marks the job failed.
    """
    from ..config import get_config
    from ..factory import resolve_dotted_name
    from .queue import error_message

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


def _preload(config) -> None:
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


def _body(args, config) -> int:
    from .queue import job_queue
    from .rq import RQJobQueue

    heartbeat = positive_int_option(args["--heartbeat"], "--heartbeat")
    max_jobs = positive_int_option(args["--max-jobs"], "--max-jobs")
    queue = job_queue(config)
    if not isinstance(queue, RQJobQueue):
        raise ConfigError(
            "pf-worker needs a 'job_queue' entry such as "
            "{'__factory__': 'pipeforge.jobs.rq.RQJobQueue', 'url': 'redis://127.0.0.1:6379/0'}",
            source=", ".join(str(s) for s in config.sources) or None,
            key="job_queue",
        )
    _preload(config)
    names = args["<queue>"] or [queue.name]
    name = args["--name"] or f"{socket.gethostname()}.{os.getpid()}"
    queue.ping()
    worker = _worker_class()(
        [queue.queue(n) for n in names],
        name=name,
        connection=queue.connection(),
        job_monitoring_interval=heartbeat,
    )
    print(f"pf-worker {name}: taking jobs from {', '.join(names)} on {queue!r}", flush=True)
    worker.work(burst=bool(args["--burst"]), max_jobs=max_jobs, logging_level="INFO")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pf-worker``; returns the exit status."""
    from ..cli.run import run_script

    return run_script(DOC, argv, _body, mode="fit")
