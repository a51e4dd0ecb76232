"""Background jobs: one interface, run by threads of this process or by workers elsewhere.

The rooms: ``interface`` (the :class:`JobQueue` interface, its record format
and the ``job_queue`` config entry), ``threads`` (the default runner, a
thread pool of this process), ``tasks`` (the fit and grid-search jobs and
the config entries they read), ``rq`` (RQ workers through Redis),
``payload`` (what a job carries through Redis: JSON naming one of the
config's job functions, never a pickle) and ``worker`` (what a
``pf-worker`` process runs; its command is :mod:`pipeforge.cli.worker`).
Nothing here imports the command line.
"""

from ..moved_modules import moved_name_getattr
from .interface import DONE_STATUSES, JobQueue, error_message, job_queue, wait_for_job
from .tasks import (
    fit_job,
    grid_search_job,
    model_caches,
    refresh_model_caches,
    require,
    unique,
)
from .threads import JobRunner

__all__ = [
    "JobQueue",
    "JobRunner",
    "DONE_STATUSES",
    "fit_job",
    "grid_search_job",
    "model_caches",
    "refresh_model_caches",
    "require",
    "unique",
    "job_queue",
    "wait_for_job",
    "error_message",
]

# 0.1's ``pipeforge.jobs.job_view`` is a view of the server now (see moved_modules)
__getattr__ = moved_name_getattr(__name__)
