"""``pf-worker``: run the background jobs of the ``job_queue`` on this host.

The command: its options, the check that the config has an RQ job queue,
and what it says. The machinery it starts (the RQ worker whose work horses
die with it, :func:`run_task` that every job runs) is
:mod:`pipeforge.jobs.worker`; ``run_task`` is also reachable here, under its
0.1 name ``pipeforge.worker.run_task`` (jobs queued by pipeforge 0.1 were
pickled: a worker now refuses them, see :mod:`pipeforge.jobs.payload`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..jobs.worker import run_task
from .run import positive_int_option, run_script

__all__ = ["main", "run_task"]

DOC = """Run background jobs (fits, grid searches, cache updates, pipeline runs) from Redis.

Uses the 'job_queue' entry of the configuration named by PIPEFORGE_CONFIG
(an RQ queue on a Redis server, see docs/scaling-out.md) and everything the
jobs need: 'dataset_loader_train', 'model', 'model_persister', 'pipelines'...
Start as many workers, on as many hosts, as you like; each runs one job at
a time. Ctrl-C (or SIGTERM) lets the current job finish, twice stops it.
Jobs are read as JSON and run only when they name one of the config's job
functions; any other job (a pickled one, say) is failed with the reason.

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


def _body(args: dict[str, Any], config: Mapping[str, Any]) -> int:
    from ..jobs import job_queue
    from ..jobs.rq import RQJobQueue
    from ..jobs.worker import preload, start_worker

    heartbeat = positive_int_option(args["--heartbeat"], "--heartbeat")
    max_jobs = positive_int_option(args["--max-jobs"], "--max-jobs")
    queue = job_queue(config)
    if not isinstance(queue, RQJobQueue):
        raise ConfigError(
            "pf-worker needs a 'job_queue' entry such as "
            "{'__factory__': 'pipeforge.jobs.rq.RQJobQueue', 'url': 'redis://127.0.0.1:6379/0'}",
            source=", ".join(str(s) for s in getattr(config, "sources", [])) or None,
            key="job_queue",
        )
    preload(config)
    names = args["<queue>"] or [queue.name]
    name = args["--name"] or f"{socket.gethostname()}.{os.getpid()}"
    queue.ping()
    print(f"pf-worker {name}: taking jobs from {', '.join(names)} on {queue!r}", flush=True)
    start_worker(
        queue, names, name=name, heartbeat=heartbeat, burst=bool(args["--burst"]), max_jobs=max_jobs
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pf-worker``; returns the exit status."""
    return run_script(DOC, argv, _body, mode="fit")
