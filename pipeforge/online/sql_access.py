"""SQL access for the online store: the engine, the tables, one driver connection per thread.

The engine is the one :class:`pipeforge.persistence.Database` sets up (the
config's model database unless a URL is given), so URLs, relative SQLite
paths and fork safety behave as for models. The tables (prefix
``pf_online_``) are created with SQLAlchemy; the per-request statements run
on one driver connection per thread, in autocommit mode with explicit
``BEGIN``/``COMMIT``, because a request must cost well under a millisecond
(SQLAlchemy's per-statement overhead alone would be a third of that).
Statements are written once with ``{p}`` for the table prefix and ``?``
placeholders; :meth:`SQLAccess.sql` adapts them to the dialect.

A database that fails (down, unreachable, its file gone) is a
:class:`~pipeforge.online.errors.StoreError` (503) whose message says the
store is unavailable, never the driver's words: those are logged, once per
outage, and once more when the store answers again. Nothing is cached on a
failure, so the next request tries again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError, PersistenceError
from ..sql import create_tables
from .errors import Outage, StoreError
from .sql_folded import Folded, rollback

if TYPE_CHECKING:
    import sqlite3
    from typing import TypeAlias

    import psycopg
    from sqlalchemy.engine import Engine

    from ..config import Config
    from ..persistence.database import Database

    #: A driver connection of the store: sqlite3's or psycopg's (both have ``execute``).
    DriverConnection: TypeAlias = sqlite3.Connection | psycopg.Connection[Any]
    #: What ``DriverConnection.execute`` returns.
    DriverCursor: TypeAlias = sqlite3.Cursor | psycopg.Cursor[Any]

__all__ = ["SQLAccess"]

logger = logging.getLogger(__name__)


_ABANDONED: list[Any] = []  # connections inherited across fork: never closed by the child


class SQLAccess:
    """The database side of :class:`~pipeforge.online.sql_store.SQLStore` (created at first use)."""

    def __init__(
        self,
        url: str | None,
        *,
        synchronous: str,
        table_prefix: str,
        engine_options: dict[str, Any] | None,
        config: Config | None,
    ):
        self.url = url
        self.synchronous = synchronous
        self.table_prefix = table_prefix
        self.engine_options = engine_options
        self.config = config
        self._lock_obj = threading.Lock()
        self._local = threading.local()
        self._opened: list[tuple[int, Any]] = []  # (pid, connection) of every connection opened
        self._sql_cache: dict[str, str] = {}
        self._setup_cache: tuple[Engine, str] | None = None
        self._database_obj: Database | None = None
        self._own_database = False
        self._outage = Outage("the online store")

    def _lock(self) -> threading.Lock:
        return self._lock_obj

    def _database(self) -> tuple[Database, bool]:
        from ..persistence.database import Database

        config = self.config
        if self.url is None and config is not None:
            persister = config.get("model_persister")
            persister = getattr(persister, "impl", persister)
            if isinstance(persister, Database):
                return persister, False
        database = Database(self.url or "sqlite:///online.db", engine_options=self.engine_options)
        if config is not None:
            database.initialize_component(config)
        return database, True

    def setup(self) -> tuple[Engine, str]:
        """(engine, dialect name, table names), created at first use."""
        setup = self._setup_cache
        if setup is not None:
            return setup
        with self._lock():
            setup = self._setup_cache
            if setup is None:
                database, own = self._database()
                self._database_obj, self._own_database = database, own
                try:
                    engine = database.engine()
                    dialect = engine.dialect.name
                    if dialect not in ("sqlite", "postgresql"):
                        raise ConfigError(
                            f"parameter 'url' of SQLStore must be an SQLite or PostgreSQL URL; got {dialect!r}"
                        )
                    self._create_tables(engine)
                except ConfigError:
                    raise
                except Exception as exc:
                    if not self.is_db_error(exc):
                        raise
                    raise self.unavailable(exc) from exc
                setup = self._setup_cache = (engine, dialect)
        return setup

    def unavailable(self, exc: BaseException) -> StoreError:
        """The client's error for a database failure ``exc`` (logged once per outage)."""
        return self._outage.failed(exc)

    def answered(self) -> None:
        """The database answered: an outage, if one was going on, is over."""
        self._outage.answered()

    def _create_tables(self, engine: Engine) -> None:
        import sqlalchemy as sa

        p = self.table_prefix
        md = sa.MetaData()
        col, text, big = sa.Column, sa.Text, sa.BigInteger
        # Small rows keyed by text: SQLite keeps them in their key's b-tree (WITHOUT ROWID),
        # so a write touches one b-tree instead of a table and its key's index.
        compact: dict[str, Any] = {"sqlite_with_rowid": False}
        sa.Table(
            f"{p}meta",
            md,
            col("k", sa.String(255), primary_key=True),
            col("v", text, nullable=False),
            **compact,
        )
        sa.Table(
            f"{p}models",
            md,
            col("name", sa.String(255), primary_key=True),
            col("uid", sa.String(64), nullable=False),
            col("flavor", sa.String(16), nullable=False),
            col("version", big, nullable=False),
            col("snapshot_version", big, nullable=False),
            col("n_learnt", big, nullable=False),
            col("source", sa.String(16), nullable=False),
            col("created", sa.Float, nullable=False),
            col("metrics", text, nullable=False),
            **compact,
        )
        sa.Table(
            f"{p}snapshots",
            md,
            col("uid", sa.String(64), primary_key=True),
            col("version", big, nullable=False),
            col("data", sa.LargeBinary, nullable=False),
        )
        sa.Table(
            f"{p}log",
            md,
            col("uid", sa.String(64), primary_key=True),
            col("version", big, primary_key=True, autoincrement=False),
            col("features", text, nullable=False),
            col("y", text, nullable=False),
            col("delta", text, nullable=True),
            **compact,
        )
        sa.Table(
            f"{p}pending",
            md,
            col("id", sa.String(255), primary_key=True),
            col("model", sa.String(255), nullable=False),
            col("features", text, nullable=False),
            col("prediction", text, nullable=False),
            col("created", sa.Float, nullable=False),
            **compact,
        )
        sa.Table(
            f"{p}events",
            md,
            col(
                "id", big().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
            ),
            col("kind", sa.String(16), nullable=False),
            col("data", text, nullable=False),
            col("at", sa.Float, nullable=False),
            sqlite_autoincrement=True,
        )
        sa.Table(
            f"{p}stats",
            md,
            col("process", sa.String(255), primary_key=True),
            col("endpoint", sa.String(16), primary_key=True),
            col("n", big, nullable=False),
            col("total", sa.Float, nullable=False),
            col("ewm", sa.Float, nullable=False),
            col("at", sa.Float, nullable=False),
            **compact,
        )
        # Tables made before the index existed get it too (the sweep of expired ids needs it).
        index = f"CREATE INDEX IF NOT EXISTS {p}pending_created ON {p}pending (created)"
        create_tables(
            md, engine, what="the online store's tables", then=lambda c: c.exec_driver_sql(index)
        )
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def conn(self) -> DriverConnection:
        """This thread's driver connection (autocommit; transactions are explicit)."""
        local = self._local
        conn: Any = getattr(local, "conn", None)  # sqlite3's or psycopg's, by the dialect
        if conn is not None and local.pid == os.getpid():
            return conn
        if conn is not None:
            _ABANDONED.append(local.fairy)  # the parent's: closing it here would close it there
        engine, dialect = self.setup()
        fairy = engine.raw_connection()
        conn = fairy.driver_connection
        fairy.detach()
        if dialect == "sqlite":
            conn.isolation_level = None
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            # A checkpoint (copying the WAL into the database, with two fsyncs) every 1000
            # pages would cost a learn ~70 us on average; every 10000 it costs a tenth.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
        else:
            conn.autocommit = True
        local.conn, local.fairy, local.pid = conn, fairy, os.getpid()
        with self._lock():
            self._opened.append((os.getpid(), fairy))
        return conn

    def drop_conn(self) -> None:
        local = self._local
        fairy = getattr(local, "fairy", None)
        if fairy is not None:
            local.conn = local.fairy = local.folded = None
            with self._lock():
                self._opened = [entry for entry in self._opened if entry[1] is not fairy]
            if local.pid == os.getpid():
                with contextlib.suppress(Exception):
                    fairy.close()

    def close(self) -> None:
        """Close every connection this process opened (the others' are left alone)."""
        with self._lock():
            opened, self._opened = self._opened, []
        for pid, fairy in opened:
            if pid == os.getpid():
                with contextlib.suppress(Exception):
                    fairy.close()
            else:
                _ABANDONED.append(fairy)
        self._local.conn = self._local.fairy = self._local.folded = None
        if self._database_obj is not None and self._own_database:
            self._database_obj.close()
        self._database_obj, self._setup_cache = None, None

    def sql(self, text: str) -> str:
        """Table names filled in; ``?`` placeholders as the driver wants them."""
        cache = self._sql_cache
        sql = cache.get(text)
        if sql is None:
            _engine, dialect = self.setup()
            sql = text.replace("{p}", self.table_prefix)
            if dialect == "postgresql":
                sql = sql.replace("?", "%s")
            else:
                sql = sql.replace(" FOR UPDATE", "")
            cache[text] = sql
        return sql

    def run(self, conn: DriverConnection, text: str, params: Sequence[Any] = ()) -> DriverCursor:
        return conn.execute(self.sql(text), params)

    @contextlib.contextmanager
    def txn(self, write: bool = True) -> Iterator[DriverConnection]:
        _engine, dialect = self.setup()
        try:
            conn = self.conn()
        except StoreError:
            raise
        except Exception as exc:
            raise self.unavailable(exc) from exc
        if dialect == "sqlite":
            begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        else:
            begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        try:
            conn.execute(begin)
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            try:
                rollback(conn)
            except Exception:
                self.drop_conn()
            if self.is_db_error(exc):
                self.drop_broken(conn)
                raise self.unavailable(exc) from exc
            raise
        if self._outage.since is not None:
            self.answered()

    @contextlib.contextmanager
    def folded_txn(self, hot: tuple[str, ...] = ()) -> Iterator[Folded]:
        """A PostgreSQL write transaction whose ``BEGIN`` and ``COMMIT`` travel with statements.

        Yields a :class:`Folded`: each :meth:`Folded.send` is one simple
        query (PostgreSQL runs its statements in order and stops at the
        first error), so ``BEGIN`` goes with the first statement and
        ``COMMIT`` with the last. The ``hot`` statements are prepared on the
        connection at its first use (before any transaction), so they are
        not planned again on every call. Whatever leaves the block with an
        exception is rolled back (a ``ROLLBACK`` after a ``COMMIT`` is harmless).
        """
        import psycopg

        try:
            conn = cast("psycopg.Connection[Any]", self.conn())  # PostgreSQL's, here
        except StoreError:
            raise
        except Exception as exc:
            raise self.unavailable(exc) from exc
        local = self._local
        folded = getattr(local, "folded", None)
        if folded is None or folded.conn is not conn:
            folded = local.folded = Folded(conn, psycopg.ClientCursor(conn), self.sql)
        try:
            folded.prepare(hot)
            yield folded
        except BaseException as exc:
            try:
                rollback(conn)
            except Exception:
                self.drop_conn()
            if isinstance(exc, psycopg.errors.InvalidSqlStatementName):
                local.folded = None  # someone deallocated them: prepare them again next time
            if self.is_db_error(exc):
                self.drop_broken(conn)
                raise self.unavailable(exc) from exc
            raise
        if self._outage.since is not None:
            self.answered()

    def read(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            rows = self.run(self.conn(), text, params).fetchall()
        except StoreError:
            raise
        except Exception as exc:
            if self.is_db_error(exc):
                self.drop_broken(None)
                raise self.unavailable(exc) from exc
            raise
        if self._outage.since is not None:
            self.answered()
        return rows

    @staticmethod
    def is_db_error(exc: BaseException) -> bool:
        """Whether ``exc`` is the database's (or its driver's) failure, not the caller's."""
        if isinstance(exc, StoreError):
            return False
        if isinstance(exc, PersistenceError):  # e.g. the SQLite file is gone
            return True
        module = type(exc).__module__ or ""
        return module.startswith(("sqlite3", "psycopg", "sqlalchemy.exc")) or type(
            exc
        ).__name__ in ("OperationalError", "DatabaseError")

    def drop_broken(self, conn: DriverConnection | None) -> None:
        if conn is None or getattr(conn, "closed", False) or getattr(conn, "broken", False):
            self.drop_conn()

    def write(self, text: str, params: Sequence[Any]) -> None:
        try:
            self.run(self.conn(), text, params)
        except StoreError:
            raise
        except Exception as exc:
            if self.is_db_error(exc):
                self.drop_broken(None)
                raise self.unavailable(exc) from exc
            raise
        if self._outage.since is not None:
            self.answered()
