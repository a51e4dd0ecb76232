"""Background jobs: one interface, run by threads of this process or by workers elsewhere.

The rooms: ``queue`` (the interface, the thread runner and the jobs
themselves), ``rq`` (RQ workers through Redis) and ``worker`` (``pf-worker``).
"""

from .queue import (
    JobQueue,
    JobRunner,
    error_message,
    fit_job,
    grid_search_job,
    job_queue,
    model_caches,
    refresh_model_caches,
    require,
    wait_for_job,
)

__all__ = [
    "JobQueue",
    "JobRunner",
    "fit_job",
    "grid_search_job",
    "model_caches",
    "refresh_model_caches",
    "require",
    "job_queue",
    "wait_for_job",
    "error_message",
]
