"""Many processes, one op store: loaded versions that every server follows, runs on workers.

* ``/pipelines/<name>/load`` and ``pf-pipeline load`` record the versions they
  loaded in the op store (table ``pf_op_loaded``: one row per load, the
  newest row wins). Every server process checks the newest rows on the
  ``pipelines_refresh`` schedule (every 5 s by default) and loads exactly
  those versions, so all workers of all hosts serve the same pipeline within
  one interval. A load swaps the whole pipeline at once: requests never see
  half of it. A process that starts later loads the recorded versions too.
* A pipeline call runs on a worker when chariots' three switches say so
  (:func:`should_use_worker`): ``use_worker`` at the top of the config (app
  level), in the pipeline's entry, and in the request body. With a
  ``job_queue`` the call goes to ``pf-worker`` processes
  (:func:`run_pipeline_job`); without one it stays a thread of this process.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PersistenceError, VersionError
from ..sql import create_tables

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    from ..jobs import JobQueue
    from ..scheduling import RruleThread
    from .pipeline import Pipeline
    from .store import OpStore

__all__ = ["PipelineSync", "should_use_worker", "run_pipeline_job", "load_current", "record_load"]

logger = logging.getLogger(__name__)

DEFAULT_REFRESH = {"freq": "SECONDLY", "interval": 5}
_CHARIOTS_STATUS = {"queued": "queued", "running": "running", "finished": "done", "error": "failed"}


def should_use_worker(app: bool | None, pipeline: bool | None, request: bool | None) -> bool:
    """chariots' rule: an explicit ``False`` anywhere wins; else any ``True``; else no."""
    levels = (app, pipeline, request)
    if any(level is False for level in levels):
        return False
    return any(level is True for level in levels)


# -- the loaded-versions table -----------------------------------------------------


def _table(store: OpStore) -> tuple[Engine, sa.Table]:
    """(engine, table) of the store's ``<prefix>loaded`` table, created on first use."""
    cached = store.__dict__.get("_loaded_table")
    if cached is not None:
        return cached
    import sqlalchemy as sa

    engine = store.engine()
    meta = sa.MetaData()
    table = sa.Table(
        f"{store.table_prefix}loaded",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline", sa.String(200), nullable=False, index=True),
        sa.Column("versions", sa.Text, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
    )
    create_tables(meta, engine, what=f"the table {table.name!r}")
    cached = store.__dict__["_loaded_table"] = (engine, table)
    return cached


def record_load(store: OpStore, pipeline: Pipeline) -> int:
    """Record ``pipeline``'s current op versions as the ones every process should serve."""
    engine, table = _table(store)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()  # noqa: UP017
    with engine.begin() as conn:
        row_id = conn.execute(
            table.insert().values(
                pipeline=pipeline.name,
                versions=json.dumps(pipeline.op_versions(), sort_keys=True),
                created=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]  # an INSERT has one
    logger.info("pipeline %r: load %s recorded in the op store", pipeline.name, row_id)
    return int(row_id)


def newest_loads(store: OpStore, names: Iterable[str]) -> dict[str, tuple[int, dict[str, str]]]:
    """``{pipeline: (load id, {op: version})}`` of the newest recorded load of each of ``names``."""
    import sqlalchemy as sa

    engine, table = _table(store)
    c = table.c
    newest = (
        sa.select(sa.func.max(c.id)).where(c.pipeline.in_(list(names))).group_by(c.pipeline)
    ).scalar_subquery()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.id, c.pipeline, c.versions).where(c.id.in_(newest))).all()
    return {name: (int(row_id), json.loads(versions)) for row_id, name, versions in rows}


def load_current(pipeline: Pipeline, store: OpStore) -> tuple[int | None, dict[str, str]]:
    """Load the recorded versions of ``pipeline`` (or the newest linked ones if none is recorded)."""
    recorded = newest_loads(store, [pipeline.name]).get(pipeline.name)
    if recorded is None:
        return None, pipeline.load(store)
    return recorded[0], pipeline.load(store, pinned=recorded[1])


# -- runs on a worker ----------------------------------------------------------------


def run_pipeline_job(
    config: Mapping[str, Any], *, pipeline: str, pipeline_input: Any = None, save: bool = False
) -> dict[str, Any]:
    """Run the config's pipeline ``pipeline`` (with the loaded versions); save what it trained."""
    from ..web import to_jsonable
    from .build import build_op_store, build_pipelines

    pipelines = build_pipelines(config)
    if pipeline not in pipelines:
        raise ConfigError(f"unknown pipeline {pipeline!r} in this worker's config", key="pipelines")
    target = pipelines[pipeline]
    store = build_op_store(config)
    try:
        load_current(target, store)
        output = target.run(pipeline_input)
        result = {"pipeline_output": to_jsonable(output), "versions": target.versions()}
        if save:
            result["saved"] = target.save(store)
        return result
    finally:
        store.dispose()


# -- one server process ----------------------------------------------------------------


class PipelineSync:
    """Keeps one process's pipelines on the recorded versions and sends runs to workers.

    ``refresh`` is the ``pipelines_refresh`` rrule dict (``None``: no following);
    ``job_queue`` the config's queue (``None``: worker runs are threads here).
    """

    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        store: OpStore,
        *,
        config: Mapping[str, Any] | None = None,
        job_queue: JobQueue | None = None,
        use_worker: bool | None = None,
        refresh: Any = DEFAULT_REFRESH,
    ):
        self.pipelines = pipelines
        self.store = store
        self.config = config
        self.job_queue = job_queue
        self.use_worker = use_worker
        self.refresh = refresh
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: RruleThread | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], pipelines: Mapping[str, Pipeline], store: OpStore
    ) -> PipelineSync:
        """Read ``use_worker``, ``pipelines_refresh`` and ``job_queue`` from ``config``."""
        from ..jobs import job_queue

        use_worker = config.get("use_worker")
        if not isinstance(use_worker, bool | None):
            raise ConfigError(
                f"must be true or false; got {use_worker!r}",
                source=", ".join(str(s) for s in getattr(config, "sources", [])) or None,
                key="use_worker",
            )
        refresh = config.get("pipelines_refresh", DEFAULT_REFRESH)
        if refresh is not None and refresh is not False:
            from ..scheduling import make_rrule

            try:
                make_rrule(refresh, owner="the config", parameter="pipelines_refresh")
            except ConfigError as exc:
                raise exc.located(key="pipelines_refresh") from None
        return cls(
            pipelines,
            store,
            config=config,
            job_queue=job_queue(config),
            use_worker=use_worker,
            refresh=refresh or None,
        )

    # -- loading ----------------------------------------------------------------------
    def ensure_loaded(self, pipeline: Pipeline) -> None:
        """Load a pipeline not loaded yet: the recorded versions, else the newest linked ones."""
        if pipeline.is_loaded:
            return
        load_id, _ = load_current(pipeline, self.store)
        if load_id is not None:
            with self._lock:
                self._seen[pipeline.name] = load_id

    def load(self, pipeline: Pipeline) -> dict[str, str]:
        """Load the newest linked versions here and record them for every other process."""
        versions = pipeline.load(self.store)
        load_id = record_load(self.store, pipeline)
        with self._lock:
            self._seen[pipeline.name] = load_id
        return versions

    def follow(self) -> list[str]:
        """Load the versions other processes recorded since the last check; return the names."""
        loads = newest_loads(self.store, list(self.pipelines))
        switched = []
        for name, (load_id, versions) in loads.items():
            with self._lock:
                if self._seen.get(name) == load_id:
                    continue
            pipeline = self.pipelines[name]
            try:
                pipeline.load(self.store, pinned=versions)
            except (VersionError, PersistenceError) as exc:
                logger.warning("pipeline %r: cannot load recorded load %s: %s", name, load_id, exc)
            else:
                logger.info("pipeline %r now serves recorded load %s", name, load_id)
                switched.append(name)
            with self._lock:
                self._seen[name] = load_id
        return switched

    # -- workers --------------------------------------------------------------------
    def wants_worker(self, pipeline: Pipeline, requested: bool | None) -> bool:
        return should_use_worker(self.use_worker, pipeline.use_worker, requested)

    def submit(self, pipeline: Pipeline, pipeline_input: Any, save: bool) -> str | None:
        """Queue a run on a worker; ``None`` when there is no job queue (run it in a thread)."""
        if self.job_queue is None:
            return None
        return self.job_queue.enqueue(
            run_pipeline_job,
            self.config,
            name=f"pipeline:{pipeline.name}",
            pipeline=pipeline.name,
            pipeline_input=pipeline_input,
            save=save,
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        """A queued pipeline run in the shape of ``/pipelines/jobs/<id>``, or ``None``."""
        if self.job_queue is None:
            return None
        record = self.job_queue.get(job_id)
        if record is None or not str(record.get("func") or "").startswith("pipeline:"):
            return None
        result = record.get("info") or {}
        return {
            "job_id": job_id,
            "pipeline": record["func"].split(":", 1)[1],
            "job_status": _CHARIOTS_STATUS.get(record["status"], record["status"]),
            "pipeline_output": result.get("pipeline_output"),
            "versions": result.get("versions"),
            "saved": result.get("saved"),
            "error_message": record.get("error"),
            "created": record.get("submitted"),
            "updated": record.get("finished") or record.get("started") or record.get("submitted"),
            "worker": record.get("worker"),
        }

    # -- Background (started by the server with its other background work) -----------
    def start(self) -> None:
        from ..scheduling import RruleThread

        if self.refresh is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = RruleThread(self._follow_quietly, self.refresh, name="pipeforge-pipelines")
        self._thread.start()

    def _follow_quietly(self) -> None:
        try:
            self.follow()
        except PersistenceError as exc:
            logger.warning("checking the op store for loaded pipelines failed: %s", exc)

    def stop(self, timeout: float | None = None) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(timeout)
