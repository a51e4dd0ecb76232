"""Background jobs: one interface, threads of this process or workers elsewhere.

A job is ``func(config, **kwargs)``: an importable function, the config of
the process that runs it, and JSON-able keyword arguments. A
:class:`JobQueue` takes jobs and reports their records::

    {"job_id", "func", "status", "submitted", "started", "finished",
     "info" (the result, when finished), "error" (a message, on error)}

``status`` goes ``queued`` → ``running`` → ``finished`` or ``error``; a job
never stays ``running`` after whatever ran it is gone.

Two implementations: :class:`JobRunner` (below; the default) runs jobs in
a small thread pool created on first use, so a forked server worker gets its
own, and keeps the records in the process store under
``process_metadata["jobs"]`` where ``/alive`` reports them; records are per
process. :class:`pipeforge.rq_queue.RQJobQueue` (the ``job_queue`` config
entry) sends jobs to ``pf-worker`` processes through Redis, where every
process and host reads the same records. Finished jobs are pruned: only the
newest ``keep`` are kept and none older than ``max_age`` seconds.
"""

from __future__ import annotations

import abc
import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from ..errors import ConfigError, PipeforgeError

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

logger = logging.getLogger(__name__)

_DONE = ("finished", "error")


def _now() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (Python 3.10)


def error_message(exc: BaseException, where: str = "the server log") -> str:
    """What a job record says about a failure: our own errors in full, others by type only."""
    if isinstance(exc, PipeforgeError | OSError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__} (see {where})"


class JobQueue(abc.ABC):
    """Where background jobs run; see the module docstring for the record format."""

    @abc.abstractmethod
    def enqueue(self, func: Callable, config, *, name: str | None = None, **kwargs) -> str:
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


class JobRunner(JobQueue):
    """Runs callables in a thread pool and records their state for ``/alive``.

    ``process_store`` is the dict-like store whose ``process_metadata``
    entry receives the job records (a private dict when ``None``).
    """

    def __init__(
        self,
        process_store=None,
        *,
        max_workers: int = 2,
        keep: int = 50,
        max_age: float = 24 * 3600.0,
    ):
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
        done = [(jid, r) for jid, r in self._records.items() if r.get("status") in _DONE]
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

    def submit(self, func: Callable, *args, name: str | None = None, **kwargs) -> str:
        """Start ``func(*args, **kwargs)`` in the background and return the job id."""
        job_id = str(uuid.uuid4())
        record = {
            "job_id": job_id,
            "func": name or getattr(func, "__name__", repr(func)),
            "status": "running",
            "submitted": _now().isoformat(),
            "started": None,
            "finished": None,
        }
        self._tell(record["func"], "running")  # before the job can finish
        with self._lock:
            self._records[job_id] = record
            try:
                self._pool().submit(self._run, job_id, func, args, kwargs)
            except RuntimeError:  # the pool is shut down (process exiting)
                del self._records[job_id]
                self._tell(record["func"], "error")
                raise
        return job_id

    def enqueue(self, func: Callable, config, *, name: str | None = None, **kwargs) -> str:
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


# -- the jobs the web service runs ----------------------------------------------


def _fresh_model(model):
    """An unfitted copy of the config's model, so jobs never share estimator state."""
    try:
        from sklearn.base import clone

        return clone(model)
    except Exception:  # not a scikit-learn estimator
        return copy.deepcopy(model)


def unique(values):
    """The distinct objects of ``values`` (by identity), in order; components may repeat."""
    seen = set()
    for value in values:
        if id(value) not in seen:
            seen.add(id(value))
            yield value


def require(config, key: str):
    """``config[key]``, or a ConfigError naming the missing entry (also for plain dicts)."""
    if hasattr(config, "require"):
        return config.require(key)
    if key not in config:
        raise ConfigError(f"missing required entry {key!r}; add it to the configuration")
    return config[key]


def model_caches(config) -> list:
    """The config's components that keep a refreshable model cache (``refresh()`` + ``read()``)."""
    found = []
    for component in unique([config.get("model_persister"), *config.values()]):
        if component is None or isinstance(component, type):
            continue
        if callable(getattr(component, "refresh", None)) and callable(
            getattr(component, "read", None)
        ):
            found.append(component)
    return found


def refresh_model_caches(config) -> list[str]:
    """Refresh every model cache of ``config``; return their class names."""
    from ..factory import decorate

    refreshed = []
    for cache in model_caches(config):
        decorate(cache.refresh, config, "update_model_decorators")()
        refreshed.append(type(cache).__name__)
    return refreshed


def fit_job(config, *, persist=True, activate=True, evaluate=False, persist_if_better_than=None):
    """Fit a fresh copy of the config's model like ``pf-fit``; refresh the caches after."""
    from .. import training
    from ..factory import decorate

    result = training.fit(
        decorate(require(config, "dataset_loader_train"), config, "load_data_decorators"),
        _fresh_model(require(config, "model")),
        require(config, "model_persister") if persist else config.get("model_persister"),
        persist=persist,
        activate=activate,
        dataset_loader_test=config.get("dataset_loader_test"),
        evaluate=evaluate,
        persist_if_better_than=persist_if_better_than,
        scoring=config.get("scoring"),
    )
    if result.version is not None and activate:
        refresh_model_caches(config)
    return {"model_version": result.version, "scores": dict(result.scores or {})}


def grid_search_job(config, *, persist_best: bool = False) -> dict:
    """Run the config's grid search like ``pf-grid-search``; return its results as plain data."""
    from .. import training
    from ..factory import decorate

    search = training.grid_search(
        decorate(require(config, "dataset_loader_train"), config, "load_data_decorators"),
        require(config, "model"),
        require(config, "grid_search"),
        scoring=config.get("scoring"),
        persist_best=persist_best,
        model_persister=require(config, "model_persister") if persist_best else None,
    )
    result = {"cv_results": _plain(dict(search.cv_results_)), "model_version": None}
    if hasattr(search, "best_params_"):
        result["best_params"] = _plain(search.best_params_)
        result["best_score"] = float(search.best_score_)
    if persist_best:
        metadata = getattr(search.best_estimator_, "__metadata__", None) or {}
        result["model_version"] = metadata.get("version")
    return result


def _plain(value):
    """numpy arrays/scalars and masked arrays as lists and Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "mask") and hasattr(value, "tolist"):  # masked array: keep the values
        return [_plain(v) for v in value.data.tolist()]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return repr(value)


def job_queue(config) -> JobQueue | None:
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
        if record is None or record["status"] in _DONE:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            return record
        time.sleep(poll)
