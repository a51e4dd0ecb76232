"""Background jobs: one interface, threads of this process or workers elsewhere.

A job is ``func(config, **kwargs)``: an importable function, the config of
the process that runs it, and JSON-able keyword arguments. A
:class:`JobQueue` takes jobs and reports their records::

    {"job_id", "func", "status", "submitted", "started", "finished",
     "info" (the result, when finished), "error" (a message, on error)}

``status`` goes ``queued`` → ``running`` → ``finished`` or ``error``; a job
never stays ``running`` after whatever ran it is gone.

Two implementations: :class:`~pipeforge.jobs.threads.JobRunner` (the
default) runs jobs in a small thread pool created on first use, so a forked
server worker gets its own, and keeps the records in the process store under
``process_metadata["jobs"]`` where ``/alive`` reports them; records are per
process. :class:`pipeforge.rq_queue.RQJobQueue` (the ``job_queue`` config
entry) sends jobs to ``pf-worker`` processes through Redis, where every
process and host reads the same records. Finished jobs are pruned: only the
newest ``keep`` are kept and none older than ``max_age`` seconds.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError, PipeforgeError

__all__ = ["JobQueue", "DONE_STATUSES", "error_message", "job_queue", "wait_for_job"]

#: The statuses of a job that has stopped: its record changes no more.
DONE_STATUSES = ("finished", "error")


def error_message(exc: BaseException, where: str = "the server log") -> str:
    """What a job record says about a failure: our own errors in full, others by type only.

    Job records are read over HTTP (``/jobs/<id>``, ``/alive``), so the text
    of a driver's error that one of ours wraps (``DataError: cannot connect
    to ...: <driver text>``) is replaced by its type; the log has it all.
    """
    if isinstance(exc, PipeforgeError | OSError):
        text = str(exc)
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, PipeforgeError):
            detail = str(cause).strip()
            for quoted in (detail, detail.splitlines()[0] if detail else ""):
                if quoted and quoted in text:  # the whole text, or its first line
                    text = text.replace(quoted, f"{type(cause).__name__} (see {where})")
                    break
        return f"{type(exc).__name__}: {text}"
    return f"unexpected {type(exc).__name__} (see {where})"


class JobQueue(abc.ABC):
    """Where background jobs run; see the module docstring for the record format."""

    @abc.abstractmethod
    def enqueue(
        self, func: Callable, config: Any, *, name: str | None = None, **kwargs: Any
    ) -> str:
        """Run ``func(config, **kwargs)`` in the background and return the job id.

        ``func`` must be importable by its dotted name and ``kwargs`` JSON-able:
        a worker elsewhere calls it with its own config.
        """

    @abc.abstractmethod
    def get(self, job_id: str) -> dict | None:
        """A copy of the record of ``job_id``, or ``None`` if unknown (or pruned)."""

    @abc.abstractmethod
    def snapshot(self) -> dict[str, dict]:
        """Copies of the recent job records, by id, safe to serialise."""

    def shutdown(self, wait: bool = True) -> None:  # noqa: B027 (optional hook)
        """Stop taking jobs; with ``wait``, let the ones running here finish."""

    def observe(self, callback: Callable[[str, str], None]) -> None:  # noqa: B027
        """Hear ``callback(job_name, state)`` for the jobs that run in this process.

        Queues whose jobs run in worker processes elsewhere tell nothing here:
        their state is read from the queue itself.
        """


def job_queue(config: Mapping[str, Any]) -> JobQueue | None:
    """The config's ``job_queue`` entry, or ``None`` when jobs run in this process's threads."""
    queue = config.get("job_queue")
    if queue is None:
        return None
    if not isinstance(queue, JobQueue):
        sources = ", ".join(str(s) for s in getattr(config, "sources", [])) or None
        raise ConfigError(
            "expected a job queue such as __factory__: pipeforge.rq_queue.RQJobQueue; "
            f"got {type(queue).__name__}",
            source=sources,
            key="job_queue",
        )
    return queue


def wait_for_job(
    queue: JobQueue,
    job_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.2,
    on_change: Callable[[dict], None] | None = None,
) -> dict | None:
    """Poll ``job_id`` until it is finished or failed (or ``timeout`` passes); return its record.

    ``on_change(record)`` is called whenever the status changes (progress for scripts).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    status = None
    while True:
        record = queue.get(job_id)
        if record is not None and record["status"] != status:
            status = record["status"]
            if on_change is not None:
                on_change(record)
        if record is None or record["status"] in DONE_STATUSES:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            return record
        time.sleep(poll)
