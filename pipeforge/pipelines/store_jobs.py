"""Background pipeline runs in the op store, so that every server process can answer for them.

``POST /pipelines/<name>/main`` with ``"use_worker": true`` answers at once
(202) with a job id; the run's status (``queued``, ``running``, ``done``,
``failed``), its result and its error are rows of the ``jobs`` table, so
``GET /pipelines/jobs/<job_id>`` may reach any worker process (or host) and
still find the job.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .store_tables import StoreTables, utc_now

__all__ = ["StoreJobs"]


class StoreJobs(StoreTables):
    """The jobs part of :class:`~pipeforge.pipelines.store.OpStore`."""

    def create_job(self, pipeline: str) -> str:
        """Record a new queued job and return its id."""
        engine, t = self._db()
        job_id = uuid.uuid4().hex
        with engine.begin() as conn:
            conn.execute(
                t["jobs"]
                .insert()
                .values(
                    job_id=job_id,
                    pipeline=pipeline,
                    status="queued",
                    created=utc_now(),
                    updated=utc_now(),
                )
            )
        return job_id

    def update_job(
        self, job_id: str, status: str, *, result: Any = None, error: str | None = None
    ) -> None:
        """Set a job's status (with its result or error)."""
        engine, t = self._db()
        values: dict[str, Any] = {"status": status, "updated": utc_now(), "error": error}
        if result is not None:
            values["result"] = json.dumps(result)
        with engine.begin() as conn:
            conn.execute(t["jobs"].update().where(t["jobs"].c.job_id == job_id).values(**values))

    def get_job(self, job_id: str) -> dict | None:
        """A job's row (its result decoded), or ``None`` for an unknown id."""
        import sqlalchemy as sa

        engine, t = self._db()
        with engine.connect() as conn:
            row = (
                conn.execute(sa.select(t["jobs"]).where(t["jobs"].c.job_id == job_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        job = dict(row)
        job["result"] = json.loads(job["result"]) if job["result"] else None
        return job
