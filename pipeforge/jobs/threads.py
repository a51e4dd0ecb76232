"""The default job queue: jobs run in a small thread pool of this process.

:class:`JobRunner` keeps the job records (see :mod:`pipeforge.jobs.interface`)
in the process store under ``process_metadata["jobs"]``, where ``/alive``
reports them. The pool starts with the first job, so a server worker forked
after the config was built gets a pool of its own.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from .interface import DONE_STATUSES, JobQueue, error_message

__all__ = ["JobRunner"]

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (Python 3.10)


class JobRunner(JobQueue):
    """Runs callables in a thread pool and records their state for ``/alive``.

    ``process_store`` is the dict-like store whose ``process_metadata``
    entry receives the job records (a private dict when ``None``).
    """

    def __init__(
        self,
        process_store: MutableMapping[str, Any] | None = None,
        *,
        max_workers: int = 2,
        keep: int = 50,
        max_age: float = 24 * 3600.0,
    ) -> None:
        self.process_store = process_store
        self.max_workers = max_workers
        self.keep = keep
        self.max_age = max_age
        # Plain in-memory state (no threads yet): the pool starts with the first job.
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._job_records: dict[str, dict] | None = None
        self._observers: list[Callable[[str, str], None]] = []

    def observe(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(job_name, state)`` on ``"running"``, ``"finished"`` and ``"error"``.

        For instrumentation (``/metrics``); a callback must be quick and must not raise.
        """
        self._observers.append(callback)

    def _tell(self, name: str, state: str) -> None:
        for callback in self._observers:
            try:
                callback(name, state)
            except Exception:
                logger.exception("a job observer failed")

    # -- internals -------------------------------------------------------------

    @property
    def _records(self) -> dict[str, dict]:
        # Called with self._lock held.
        if self._job_records is None:
            store = self.process_store if self.process_store is not None else {}
            if "process_metadata" not in store:
                store["process_metadata"] = {}
            self._job_records = store["process_metadata"].setdefault("jobs", {})
        return self._job_records

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="pipeforge-job"
            )
        return self._executor

    def _run(self, job_id: str, func: Callable, args, kwargs) -> None:
        name = getattr(func, "__name__", repr(func))
        with self._lock:
            record = self._records.get(job_id)
            if record is not None:
                record["started"] = _now().isoformat()
                record["thread"] = threading.get_ident()
                name = record["func"]
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            logger.error(
                "job %s (%s) failed", job_id, getattr(func, "__name__", func), exc_info=exc
            )
            self._finish(job_id, status="error", error=error_message(exc))
            self._tell(name, "error")
        else:
            self._finish(job_id, status="finished", info=_info(result))
            self._tell(name, "finished")

    def _finish(self, job_id: str, **fields) -> None:
        with self._lock:
            record = self._records.get(job_id)
            if record is not None:
                record.update(fields, finished=_now().isoformat())
            self._prune()

    def _prune(self) -> None:
        done = [(jid, r) for jid, r in self._records.items() if r.get("status") in DONE_STATUSES]
        now = _now()
        for jid, record in done:
            finished = datetime.fromisoformat(record["finished"])
            if (now - finished).total_seconds() > self.max_age:
                self._records.pop(jid, None)
        done = [(jid, r) for jid, r in done if jid in self._records]
        excess = len(done) - self.keep
        if excess > 0:
            done.sort(key=lambda item: item[1]["finished"])
            for jid, _ in done[:excess]:
                self._records.pop(jid, None)

    # -- public API ------------------------------------------------------------

    def submit(self, func: Callable, *args: Any, name: str | None = None, **kwargs: Any) -> str:
        """Start ``func(*args, **kwargs)`` in the background and return the job id."""
        job_id = str(uuid.uuid4())
        func_name = name or str(getattr(func, "__name__", repr(func)))
        record = {
            "job_id": job_id,
            "func": func_name,
            "status": "running",
            "submitted": _now().isoformat(),
            "started": None,
            "finished": None,
        }
        self._tell(func_name, "running")  # before the job can finish
        with self._lock:
            self._records[job_id] = record
            try:
                self._pool().submit(self._run, job_id, func, args, kwargs)
            except RuntimeError:  # the pool is shut down (process exiting)
                del self._records[job_id]
                self._tell(func_name, "error")
                raise
        return job_id

    def enqueue(
        self, func: Callable, config: Any, *, name: str | None = None, **kwargs: Any
    ) -> str:
        """Run ``func(config, **kwargs)`` in a thread of this process."""
        return self.submit(func, config, name=name, **kwargs)

    def get(self, job_id: str) -> dict | None:
        """A copy of the record of ``job_id``, or ``None`` if unknown (or pruned)."""
        with self._lock:
            record = self._records.get(job_id)
            return dict(record) if record is not None else None

    def snapshot(self) -> dict[str, dict]:
        """Copies of all job records, safe to serialise while jobs run."""
        with self._lock:
            return {jid: dict(record) for jid, record in self._records.items()}

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; with ``wait``, let the running ones finish."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)


def _info(result):
    if result is None or isinstance(result, str | int | float | bool | dict | list):
        return result
    text = repr(result)
    return text if len(text) <= 500 else text[:497] + "..."
