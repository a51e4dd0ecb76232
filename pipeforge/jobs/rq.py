"""Background jobs on RQ workers through Redis: the ``job_queue`` config entry.

With ``job_queue`` set to an :class:`RQJobQueue`, ``/fit``,
``/update-model-cache``, ``pf-fit --queue``, ``pf-grid-search --queue`` and
pipeline runs that use a worker are put on an RQ queue, and ``pf-worker``
processes (on any host) run them with their own copy of the config. A job's
state and result live in Redis, so any server process or host reads the
same record by id, and a web worker's restart loses nothing.

A worker that dies mid-job stops sending heartbeats; whoever reads the job
next (``/alive``, ``GET /jobs/<id>``, a waiting script) marks it failed once
no heartbeat came for ``abandoned_after`` seconds, the way RQ's own registry
cleanup does much later. See docs/scaling-out.md.

Jobs travel as JSON (RQ's JSON serializer) and name only the job functions
of the config; nothing read from Redis is unpickled (see
:mod:`pipeforge.jobs.payload`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, JobQueueError
from .interface import JobQueue
from .payload import TASK, allowed_jobs, check_arguments, job_class, job_name, refusal, serializer

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

__all__ = ["RQJobQueue", "TASK"]

logger = logging.getLogger(__name__)

_STATUS = {
    "queued": "queued",
    "deferred": "queued",
    "scheduled": "queued",
    "started": "running",
    "finished": "finished",
    "failed": "error",
    "stopped": "error",
    "canceled": "error",
}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # noqa: UP017 (Python 3.10)
    return value.isoformat()


def _safe(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


#: What RQ raises for a job record or result it cannot decode (bad JSON, dates, compression)
_UNREADABLE = (ValueError, zlib.error)


class RQJobQueue(JobQueue):
    """Jobs on the RQ queue ``name`` of the Redis server at ``url``.

    ``job_timeout``: seconds a job may run before its worker stops it.
    ``abandoned_after``: seconds without a heartbeat from the worker running
    a job before the job counts as failed (must exceed the workers'
    ``--heartbeat`` interval; ``pf-worker`` beats every 5 s by default).
    ``keep`` / ``max_age``: how many finished jobs, and for how long,
    ``/alive`` lists and Redis keeps. ``jobs``: the dotted names of job
    functions of your own that workers may run, besides pipeforge's (fits,
    grid searches, cache refreshes, pipeline runs); a job naming any other
    function is refused.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        name: str = "pipeforge",
        *,
        job_timeout: int = 3600,
        abandoned_after: float = 30.0,
        keep: int = 50,
        max_age: float = 24 * 3600.0,
        jobs: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.name = name
        self.job_timeout = job_timeout
        self.abandoned_after = abandoned_after
        self.keep = keep
        self.max_age = max_age
        self.jobs = jobs

    def __repr__(self) -> str:
        return f"RQJobQueue(url={_safe(self.url)!r}, name={self.name!r})"

    # -- connections (per process: a forked server worker opens its own) -------
    def _check(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "parameter 'url' of RQJobQueue must be a Redis URL such as "
                f"'redis://127.0.0.1:6379/0'; got {self.url!r} instead",
                key="job_queue",
            )
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(
                f"parameter 'name' of RQJobQueue must be a queue name; got {self.name!r} instead",
                key="job_queue",
            )
        for param in ("job_timeout", "abandoned_after", "keep", "max_age"):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(
                    f"parameter {param!r} of RQJobQueue must be a positive number; "
                    f"got {value!r} instead",
                    key="job_queue",
                )
        if isinstance(self.jobs, str) or not all(
            isinstance(name, str) and name.strip() for name in self.jobs
        ):
            raise ConfigError(
                "parameter 'jobs' of RQJobQueue must be a list of dotted names of job functions; "
                f"got {self.jobs!r} instead",
                key="job_queue.jobs",
            )

    def allowed_jobs(self) -> frozenset[str]:
        """The dotted names of the job functions the workers of this queue run."""
        self._check()
        return allowed_jobs(self.jobs)

    def connection(self) -> Redis:
        """This process's Redis client (created on first use)."""
        cached = self.__dict__.get("_redis")
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        with self.__dict__.setdefault("_redis_lock", threading.Lock()):
            cached = self.__dict__.get("_redis")
            if cached is None or cached[0] != os.getpid():
                self._check()
                try:
                    import redis
                except ImportError as exc:
                    raise ConfigError(
                        "RQJobQueue needs the 'queue' extra: pip install 'pipeforge[queue]'",
                        key="job_queue",
                    ) from exc
                client = redis.Redis.from_url(self.url, socket_connect_timeout=5)
                cached = self.__dict__["_redis"] = (os.getpid(), client)
        return cached[1]

    def queue(self, name: str | None = None) -> Queue:
        """The ``rq.Queue`` jobs go to (or the queue ``name`` on the same server), JSON only."""
        from rq import Queue

        return Queue(
            name or self.name,
            connection=self.connection(),
            serializer=serializer(),
            job_class=job_class(),
        )

    @property
    def _index(self) -> str:
        return f"pipeforge:jobs:{self.name}"

    def _redis_call(self, what: str, func: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return func()
        except RedisError as exc:
            raise JobQueueError(
                f"cannot {what} on the job queue {self.name!r} at {_safe(self.url)}: {exc}"
            ) from exc

    def ping(self) -> None:
        """Check that the Redis server answers (JobQueueError if not)."""
        self._redis_call("connect", lambda: self.connection().ping())

    # -- JobQueue -------------------------------------------------------------
    def enqueue(
        self, func: Callable, config: Any = None, *, name: str | None = None, **kwargs: Any
    ) -> str:
        """Put ``func(worker's config, **kwargs)`` on the queue; return the job id.

        ``func`` must be one of the job functions the workers run
        (:meth:`allowed_jobs`) and ``kwargs`` JSON data (TypeError if not).
        """
        func_name = job_name(func)
        if func_name.replace(":", ".") not in self.allowed_jobs():
            raise ConfigError(
                f"workers run only pipeforge's jobs and those named in 'jobs'; add {func_name!r}",
                key="job_queue.jobs",
            )
        check_arguments(kwargs)
        label = name or func_name.rsplit(":", 1)[-1]
        job_id = str(uuid.uuid4())
        queue = self.queue()
        ttl = int(self.max_age)

        def put():
            queue.enqueue_call(
                TASK,
                args=(func_name, kwargs),
                job_id=job_id,
                timeout=int(self.job_timeout),
                result_ttl=ttl,
                failure_ttl=ttl,
                description=label,
                meta={"name": label},
            )
            connection = self.connection()
            connection.zadd(self._index, {job_id: time.time()})
            connection.zremrangebyrank(self._index, 0, -(self.keep + 1000) - 1)
            connection.expire(self._index, ttl)

        self._redis_call("submit a job", put)
        logger.debug("job %s (%s) queued on %r", job_id, label, self.name)
        return job_id

    def _fetch(self, job_id: str) -> Any:
        """The job ``job_id`` read as JSON, ``None`` if unknown, its id if unreadable."""
        from rq.exceptions import NoSuchJobError

        connection = self.connection()
        try:
            return job_class().fetch(job_id, connection=connection, serializer=serializer())
        except NoSuchJobError:
            return None
        except _UNREADABLE:
            return job_id

    def get(self, job_id: str) -> dict | None:
        job = self._redis_call("read a job", lambda: self._fetch(job_id))
        return None if job is None else self._record(job)

    def snapshot(self) -> dict[str, dict]:
        def fetch():
            connection = self.connection()
            connection.zremrangebyscore(self._index, "-inf", time.time() - self.max_age)
            ids = [i.decode() for i in connection.zrevrange(self._index, 0, self.keep + 200)]
            try:
                jobs = job_class().fetch_many(ids, connection=connection, serializer=serializer())
            except _UNREADABLE:  # one bad record: read them one by one
                jobs = [self._fetch(job_id) for job_id in ids]
            return [self._record(job) for job in jobs if job is not None]

        records, finished = {}, 0
        for record in self._redis_call("list jobs", fetch):
            if record["status"] in ("finished", "error"):
                finished += 1
                if finished > self.keep:
                    continue
            records[record["job_id"]] = record
        return dict(reversed(list(records.items())))  # oldest first, like JobRunner

    # -- records ----------------------------------------------------------------
    def _record(self, job) -> dict:
        if isinstance(job, str):  # a record in Redis that RQ cannot read
            return _unreadable_record(job, "refused: the job's record in Redis cannot be read")
        status = job.get_status(refresh=False)
        status = getattr(status, "value", status)
        if status == "started" and self._abandoned(job):
            self._fail_abandoned(job)
            status = "failed"
        meta = job.meta if isinstance(job.meta, dict) else {}
        name = meta.get("name")
        record = {
            "job_id": job.id,
            "func": name if isinstance(name, str) else job.description,
            "status": _STATUS.get(str(status), str(status)),
            "submitted": _iso(job.enqueued_at or job.created_at),
            "started": _iso(job.started_at),
            "finished": _iso(job.ended_at),
            "worker": job.worker_name or None,
        }
        problem = refusal(job, self.allowed_jobs())
        if problem is None and record["status"] == "finished":
            try:
                record["info"] = job.return_value()
            except _UNREADABLE:
                problem = "the job's result in Redis is not JSON"
        if problem is not None:
            record.update(status="error", error=problem, finished=record["finished"] or _now())
        elif record["status"] == "error":
            record["error"] = self._error(job)
            record["finished"] = record["finished"] or _now()
        return record

    def _abandoned(self, job) -> bool:
        beat = job.last_heartbeat or job.started_at
        if beat is None:
            return False
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=timezone.utc)  # noqa: UP017
        return (datetime.now(timezone.utc) - beat).total_seconds() > self.abandoned_after  # noqa: UP017

    def _fail_abandoned(self, job) -> None:
        """Record the failure of a job whose worker died, as RQ's registry cleanup would."""
        from rq.registry import StartedJobRegistry

        message = (
            f"the worker running this job ({job.worker_name or 'unknown'}) sent no heartbeat "
            f"for {self.abandoned_after:g} s and counts as dead; nothing of the job was kept"
        )
        logger.warning("job %s: %s", job.id, message)
        connection = self.connection()
        registry = StartedJobRegistry(
            job.origin, connection=connection, job_class=job_class(), serializer=serializer()
        )
        with connection.pipeline() as pipe:
            meta = job.meta if isinstance(job.meta, dict) else {}
            meta = {k: v for k, v in meta.items() if k != "unserialized"}  # not JSON: RQ's stand-in
            job.meta = {**meta, "error": message}
            job.save_meta()
            _record_failure(job, message, pipe)
            if hasattr(registry, "remove_executions"):  # RQ 3
                registry.remove_executions(job, pipeline=pipe)
            else:
                registry.remove(job, pipeline=pipe)
            pipe.execute()

    @staticmethod
    def _error(job) -> str:
        meta = job.meta if isinstance(job.meta, dict) else {}
        if meta.get("error"):
            return str(meta["error"])
        try:
            result = job.latest_result()
        except _UNREADABLE:
            result = None
        text = (getattr(result, "exc_string", None) or "").strip()
        last = text.splitlines()[-1] if text else "no error recorded"
        return f"the job's worker process ended unexpectedly: {last}"


def _now() -> str | None:
    return _iso(datetime.now(timezone.utc))  # noqa: UP017 (Python 3.10)


def _unreadable_record(job_id: str, problem: str) -> dict:
    """The record of a job whose record RQ cannot read: failed, with the reason."""
    return {
        "job_id": job_id,
        "func": None,
        "status": "error",
        "submitted": None,
        "started": None,
        "finished": _now(),
        "worker": None,
        "error": problem,
    }


def _record_failure(job, message: str, pipe) -> None:
    try:
        from rq.job_lifecycle import record_job_failure
    except ImportError:  # RQ 2.x
        from rq.job import JobStatus

        job.set_status(JobStatus.FAILED, pipeline=pipe)
        job._handle_failure(message, pipe)
    else:
        record_job_failure(job, message, pipe)
