"""The op store's database: its four tables and the engine, made at first use.

:class:`StoreTables` is the part of :class:`~pipeforge.pipelines.store.OpStore`
that checks the store's parameters and connects: nothing happens when the
config is read; the first call that needs the database creates the engine
and the tables (``pf_op_`` + ``versions``, ``chunks``, ``links``, ``jobs``),
tolerating another process that creates them at the same moment. The
versions, the lineage and the jobs are written by the other parts of the
store.
"""

from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..sql import create_engine, create_tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ..config import Config

__all__ = ["StoreTables", "utc_now"]


def utc_now() -> str:
    """The time the op store writes (``created``, ``updated``): ISO 8601 in UTC."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class StoreTables:
    """The op store's engine and tables (see the module doc); the parameters are the store's."""

    url: str
    chunk_size: int
    compress: int
    table_prefix: str

    def initialize_component(self, config: Config) -> None:
        """A relative SQLite file is taken from the config's folder, like the model database."""
        self._here = getattr(config, "here", None)

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
        engine = create_engine(self.url, here=self.__dict__.get("_here"), owner="OpStore")
        tables = _tables(sa, self.table_prefix)
        create_tables(tables["meta"], engine, what="the op store's tables")
        return engine, tables

    def engine(self) -> Engine:
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
