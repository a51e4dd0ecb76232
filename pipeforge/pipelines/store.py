"""The op store: every op version, its trained state, and who was trained on whom.

Tables (SQLAlchemy Core, created on first use, prefix ``pf_op_``):

* ``pf_op_versions``: one row per (op name, version string), ordered by id
  (the newest version is the highest id, never the oldest or a timestamp);
* ``pf_op_chunks``: a version's pickled, compressed state, in chunks;
* ``pf_op_links``: "version V of op B was trained on version W of op A",
  with W's major part, which is what loading checks;
* ``pf_op_jobs``: background pipeline runs, readable from every process.

A trained version and its links are written in one transaction, so a failed
save leaves nothing half-written.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import uuid
from typing import Any

from ..config_files import resolve_sqlite_url
from ..errors import ConfigError, PersistenceError
from ..persistence.storage import dump_chunks, load_chunks

__all__ = ["OpStore", "OpRecord"]

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class OpRecord:
    """One op version to save: name, version strings and the state (or ``None``)."""

    def __init__(
        self,
        op_name: str,
        version: str,
        config_version: str,
        state: Any = None,
        has_state: bool = False,
        links: list[tuple[str, str]] | None = None,
    ):
        self.op_name = op_name
        self.version = version
        self.config_version = config_version
        self.state = state
        self.has_state = has_state
        self.links = links or []  # (upstream op name, upstream version string)


class OpStore:
    """Op versions, states and links in a SQL database (SQLite or PostgreSQL).

    ``url`` is an SQLAlchemy URL; ``chunk_size`` (bytes) splits large states;
    ``compress`` is the zlib level (0 = off; fast by default). States are
    pickled and chunked the same streaming way as models.
    """

    def __init__(
        self,
        url: str = "sqlite:///pipeforge-ops.db",
        *,
        chunk_size: int = 4 * 1024 * 1024,
        compress: int = 1,
        table_prefix: str = "pf_op_",
    ):
        self.url = url
        self.chunk_size = chunk_size
        self.compress = compress
        self.table_prefix = table_prefix

    def initialize_component(self, config) -> None:
        """A relative SQLite file is taken from the config's folder, like the model database."""
        self._here = getattr(config, "here", None)

    # -- setup ------------------------------------------------------------------
    def _lock(self) -> threading.Lock:
        return self.__dict__.setdefault("_store_lock", threading.Lock())

    def _db(self):
        """(engine, tables), created on first use."""
        db = self.__dict__.get("_db_cache")
        if db is not None:
            return db
        with self._lock():
            db = self.__dict__.get("_db_cache")
            if db is None:
                db = self.__dict__["_db_cache"] = self._connect()
        return db

    def _connect(self):
        import sqlalchemy as sa

        if not isinstance(self.url, str) or not self.url:
            raise ConfigError(
                f"parameter 'url' of OpStore must be an SQLAlchemy URL; got {self.url!r} instead"
            )
        if not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ConfigError(
                f"parameter 'chunk_size' of OpStore must be a positive int; got {self.chunk_size!r} instead"
            )
        if isinstance(self.compress, bool) or not (
            isinstance(self.compress, int) and 0 <= self.compress <= 9
        ):
            raise ConfigError(
                f"parameter 'compress' of OpStore must be a zlib level from 0 (off) to 9; got {self.compress!r} instead"
            )
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = sa.pool.StaticPool
        try:
            engine = sa.create_engine(
                resolve_sqlite_url(self.url, self.__dict__.get("_here")), **kwargs
            )
        except Exception as exc:
            raise ConfigError(
                f"parameter 'url' of OpStore: cannot use {self.url!r}: {exc}"
            ) from exc
        tables = _tables(sa, self.table_prefix)
        for attempt in range(2):  # two processes may race to create the tables
            try:
                tables["meta"].create_all(engine, checkfirst=True)
                break
            except sa.exc.SQLAlchemyError as exc:
                if attempt:
                    raise PersistenceError(
                        f"cannot create the op store tables at {engine.url!r}: {exc}"
                    ) from exc
        return engine, tables

    # -- versions -----------------------------------------------------------------
    def save(self, records: list[OpRecord]) -> None:
        """Store versions (with state and links) that are not stored yet, atomically."""
        import sqlalchemy as sa

        engine, t = self._db()
        payloads = {id(r): self._dump(r.state) for r in records if r.has_state}
        for attempt in range(2):
            try:
                self._save(engine, t, records, payloads)
                return
            except sa.exc.IntegrityError:
                # Another process saved some of the same rows at the same moment;
                # the retry sees them and only adds what is missing.
                if attempt:
                    raise
                logger.info("op versions saved concurrently by another process; retrying")
            except sa.exc.SQLAlchemyError as exc:
                raise PersistenceError(f"cannot save op versions to {engine.url!r}: {exc}") from exc

    def _save(self, engine, t, records, payloads) -> None:
        import sqlalchemy as sa

        with engine.begin() as conn:
            for r in records:
                exists = conn.execute(
                    sa.select(t["versions"].c.id).where(
                        t["versions"].c.op_name == r.op_name, t["versions"].c.version == r.version
                    )
                ).first()
                if exists is None:
                    chunks = payloads.get(id(r), [])
                    version_id = conn.execute(
                        t["versions"]
                        .insert()
                        .values(
                            op_name=r.op_name,
                            version=r.version,
                            config_version=r.config_version,
                            major=r.version.split(".")[0],
                            has_state=r.has_state,
                            n_chunks=len(chunks),
                            size=sum(len(c) for c in chunks),
                            created=_now(),
                        )
                    ).inserted_primary_key[0]
                    if chunks:
                        conn.execute(
                            t["chunks"].insert(),
                            [
                                {"version_id": version_id, "idx": i, "data": c}
                                for i, c in enumerate(chunks)
                            ],
                        )
                for up_name, up_version in r.links:
                    if not self._link_exists(conn, t, r.op_name, r.version, up_name, up_version):
                        conn.execute(
                            t["links"]
                            .insert()
                            .values(
                                down_name=r.op_name,
                                down_version=r.version,
                                up_name=up_name,
                                up_version=up_version,
                                up_major=up_version.split(".")[0],
                                created=_now(),
                            )
                        )

    @staticmethod
    def _link_exists(conn, t, down_name, down_version, up_name, up_version) -> bool:
        import sqlalchemy as sa

        c = t["links"].c
        return (
            conn.execute(
                sa.select(c.id).where(
                    c.down_name == down_name,
                    c.down_version == down_version,
                    c.up_name == up_name,
                    c.up_version == up_version,
                )
            ).first()
            is not None
        )

    def _dump(self, state: Any) -> list[bytes]:
        chunks: list[bytes] = []
        try:
            dump_chunks(state, lambda _i, c: chunks.append(c), self.chunk_size, self.compress)
        except Exception as exc:
            raise PersistenceError(
                f"cannot serialize op state {type(state).__name__}: {exc}"
            ) from exc
        return chunks

    def newest(
        self, op_name: str, config_major: str | None = None, *, with_state: bool = False
    ) -> dict | None:
        """The newest stored version of ``op_name``.

        With ``config_major``, only versions trained with a configuration of that
        major version count (minor and patch changes of the config keep them usable).
        """
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["versions"].c
        query = sa.select(t["versions"]).where(c.op_name == op_name)
        if config_major is not None:
            query = query.where(c.config_version.like(f"{config_major}.%"))
        if with_state:
            query = query.where(c.has_state.is_(True))
        with engine.connect() as conn:
            row = conn.execute(query.order_by(c.id.desc()).limit(1)).mappings().first()
        return dict(row) if row is not None else None

    def version_row(self, op_name: str, version: str) -> dict | None:
        """The stored row of ``version`` of ``op_name`` (as :meth:`newest` returns), or ``None``."""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["versions"].c
        query = sa.select(t["versions"]).where(c.op_name == op_name, c.version == version)
        with engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def read_state(self, version_row: dict) -> Any:
        """Load the state stored for ``version_row`` (as returned by :meth:`newest`)."""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["chunks"].c
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.data).where(c.version_id == version_row["id"]).order_by(c.idx)
            ).all()
        if len(rows) != version_row["n_chunks"]:
            raise PersistenceError(
                f"op {version_row['op_name']!r} version {version_row['version']}: expected "
                f"{version_row['n_chunks']} stored chunks; found {len(rows)}"
            )
        chunks = [bytes(r[0]) for r in rows]
        compressed = bool(chunks) and chunks[0][:1] == b"\x78"  # a zlib stream, not a pickle
        try:
            return load_chunks(chunks, compressed)
        except Exception as exc:
            raise PersistenceError(
                f"cannot read op {version_row['op_name']!r} version {version_row['version']}: {exc}"
            ) from exc

    def has_link(self, down_name: str, down_version: str, up_name: str, up_major: str) -> bool:
        """Was ``down_version`` of ``down_name`` trained on a version of ``up_name`` with ``up_major``?"""
        import sqlalchemy as sa

        engine, t = self._db()
        c = t["links"].c
        with engine.connect() as conn:
            return (
                conn.execute(
                    sa.select(c.id)
                    .where(
                        c.down_name == down_name,
                        c.down_version == down_version,
                        c.up_name == up_name,
                        c.up_major == up_major,
                    )
                    .limit(1)
                ).first()
                is not None
            )

    def list_versions(self, op_name: str) -> list[dict]:
        """Every stored version of ``op_name``, newest first, with its upstream links."""
        import sqlalchemy as sa

        engine, t = self._db()
        v, lk = t["versions"].c, t["links"].c
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(v.version, v.config_version, v.has_state, v.size, v.created)
                    .where(v.op_name == op_name)
                    .order_by(v.id.desc())
                )
                .mappings()
                .all()
            )
            links = conn.execute(
                sa.select(lk.down_version, lk.up_name, lk.up_version)
                .where(lk.down_name == op_name)
                .order_by(lk.id)
            ).all()
        result = []
        for row in rows:
            entry = dict(row)
            entry["trained_on"] = {up: upv for down, up, upv in links if down == row["version"]}
            result.append(entry)
        return result

    # -- jobs ---------------------------------------------------------------------
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
                    created=_now(),
                    updated=_now(),
                )
            )
        return job_id

    def update_job(
        self, job_id: str, status: str, *, result: Any = None, error: str | None = None
    ) -> None:
        engine, t = self._db()
        values: dict[str, Any] = {"status": status, "updated": _now(), "error": error}
        if result is not None:
            values["result"] = json.dumps(result)
        with engine.begin() as conn:
            conn.execute(t["jobs"].update().where(t["jobs"].c.job_id == job_id).values(**values))

    def get_job(self, job_id: str) -> dict | None:
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

    def engine(self):
        """The store's SQLAlchemy engine (tables created), for modules that add their own tables."""
        return self._db()[0]

    def dispose(self) -> None:
        """Close the store's connections (it reconnects on next use)."""
        db = self.__dict__.pop("_db_cache", None)
        if db is not None:
            db[0].dispose()


def _tables(sa, prefix: str) -> dict:
    meta = sa.MetaData()
    versions = sa.Table(
        f"{prefix}versions",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("op_name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("config_version", sa.String(64), nullable=False),
        sa.Column("major", sa.String(32), nullable=False),
        sa.Column("has_state", sa.Boolean, nullable=False),
        sa.Column("n_chunks", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.UniqueConstraint("op_name", "version", name=f"{prefix}versions_name_version"),
    )
    chunks = sa.Table(
        f"{prefix}chunks",
        meta,
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey(f"{prefix}versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    links = sa.Table(
        f"{prefix}links",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("down_name", sa.String(200), nullable=False),
        sa.Column("down_version", sa.String(64), nullable=False),
        sa.Column("up_name", sa.String(200), nullable=False),
        sa.Column("up_version", sa.String(64), nullable=False),
        sa.Column("up_major", sa.String(32), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.UniqueConstraint(
            "down_name", "down_version", "up_name", "up_version", name=f"{prefix}links_unique"
        ),
        sa.Index(f"{prefix}links_lookup", "down_name", "down_version", "up_name", "up_major"),
    )
    jobs = sa.Table(
        f"{prefix}jobs",
        meta,
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
    )
    return {"meta": meta, "versions": versions, "chunks": chunks, "links": links, "jobs": jobs}
