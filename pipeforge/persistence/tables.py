"""The SQL tables of a :class:`~pipeforge.persistence.Database` model store, and their rows.

Four tables, each name suffixed with the store's ``table_postfix``:

- ``pipeforge_models``: one row per version: its metadata (JSON), how many
  chunks, how many bytes, which pickler and compression wrote it;
- ``pipeforge_model_chunks``: the stored bytes, ``(version, idx)`` per chunk;
- ``pipeforge_properties``: ``active-model``, ``db-version`` and the like;
- ``pipeforge_counters``: ``model-version``, the last version handed out
  (bumped in the transaction that stores the model, so two processes never
  get the same number), and ``admin``, a row whose update is the store's
  write lock.

The row operations take a connection, so the persister decides the
transaction they run in. :class:`SQLiteFile` tells the persister when the
SQLite file under its pool was replaced or deleted.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import PersistenceError
from ..sql import create_tables
from .storage import db_version

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

__all__ = ["StoreTables", "SQLiteFile"]

VERSION_COUNTER = "model-version"
ADMIN_LOCK = "admin"


class StoreTables:
    """pipeforge's tables of one model store (``postfix`` appended to their names)."""

    def __init__(self, postfix: str = ""):
        import sqlalchemy as sa

        self.metadata = md = sa.MetaData()
        col = sa.Column
        self.models: Table = sa.Table(
            f"pipeforge_models{postfix}",
            md,
            col("version", sa.Integer, primary_key=True, autoincrement=False),
            col("metadata", sa.Text, nullable=False),
            col("chunks", sa.Integer, nullable=False),
            col("stored_bytes", sa.BigInteger, nullable=False),
            col("pickler", sa.String(16), nullable=False),
            col("compression", sa.String(16), nullable=False),
        )
        self.chunks: Table = sa.Table(
            f"pipeforge_model_chunks{postfix}",
            md,
            col("version", sa.Integer, primary_key=True, autoincrement=False),
            col("idx", sa.Integer, primary_key=True, autoincrement=False),
            col("data", sa.LargeBinary, nullable=False),
        )
        self.properties: Table = sa.Table(
            f"pipeforge_properties{postfix}",
            md,
            col("name", sa.String(64), primary_key=True),
            col("value", sa.Text, nullable=False),
        )
        self.counters: Table = sa.Table(
            f"pipeforge_counters{postfix}",
            md,
            col("name", sa.String(64), primary_key=True),
            col("value", sa.Integer, nullable=False),
        )

    def create(self, engine: Engine) -> None:
        """Create the tables and their first rows, unless they exist (several processes may try)."""
        import sqlalchemy as sa

        seeds: list[tuple[Table, dict[str, Any]]] = [
            (self.counters, {"name": VERSION_COUNTER, "value": 0}),
            (self.counters, {"name": ADMIN_LOCK, "value": 0}),
            (self.properties, {"name": "db-version", "value": db_version()}),
        ]

        def seed(conn: Connection) -> None:
            for table, row in seeds:
                key = table.c.name == row["name"]
                if conn.execute(sa.select(table.c.name).where(key)).first() is None:
                    conn.execute(table.insert().values(**row))

        create_tables(self.metadata, engine, what="the model store's tables", then=seed)

    # -- counters -------------------------------------------------------------

    def lock(self, conn: Connection, name: str = ADMIN_LOCK) -> None:
        """Take the store's write lock ``name`` until the transaction ends (a row lock)."""
        import sqlalchemy as sa

        counters = self.counters
        conn.execute(
            sa.update(counters).where(counters.c.name == name).values(value=counters.c.value)
        )

    def last_version(self, conn: Connection) -> int:
        """The last version number handed out (deleted ones included)."""
        import sqlalchemy as sa

        counters = self.counters
        query = sa.select(counters.c.value).where(counters.c.name == VERSION_COUNTER)
        return int(conn.execute(query).scalar() or 0)

    def claim_version(self, conn: Connection) -> int:
        """The next version number, claimed in ``conn``'s transaction."""
        import sqlalchemy as sa

        counters = self.counters
        return conn.execute(
            sa.update(counters)
            .where(counters.c.name == VERSION_COUNTER)
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        ).scalar_one()

    def skip_versions(self, conn: Connection, last: int) -> None:
        """Never hand out a version up to ``last`` (numbers another program used)."""
        import sqlalchemy as sa

        counters = self.counters
        conn.execute(
            sa.update(counters).where(counters.c.name == VERSION_COUNTER).values(value=last)
        )

    # -- rows -----------------------------------------------------------------

    def versions(self, conn: Connection) -> list[int]:
        """The versions stored."""
        import sqlalchemy as sa

        return [r[0] for r in conn.execute(sa.select(self.models.c.version))]

    def get_property(self, conn: Connection, name: str) -> str | None:
        import sqlalchemy as sa

        props = self.properties
        return conn.execute(sa.select(props.c.value).where(props.c.name == name)).scalar()

    def put_property(self, conn: Connection, name: str, value: str | None) -> None:
        """Set the property ``name``; ``None`` removes it."""
        import sqlalchemy as sa

        props = self.properties
        where = props.c.name == name
        if value is None:
            conn.execute(sa.delete(props).where(where))
        elif conn.execute(sa.update(props).where(where).values(value=value)).rowcount == 0:
            conn.execute(props.insert().values(name=name, value=value))

    def add_chunk(self, conn: Connection, version: int, idx: int, data: bytes) -> None:
        """Store chunk ``idx`` of model ``version``."""
        conn.execute(self.chunks.insert().values(version=version, idx=idx, data=data))

    def add_model(
        self,
        conn: Connection,
        version: int,
        metadata: str,
        chunks: int,
        stored_bytes: int,
        pickler: str,
        compression: str,
    ) -> None:
        """List model ``version`` (its ``chunks`` already stored) with its metadata (JSON text)."""
        conn.execute(
            self.models.insert().values(
                version=version,
                metadata=metadata,
                chunks=chunks,
                stored_bytes=stored_bytes,
                pickler=pickler,
                compression=compression,
            )
        )


class SQLiteFile:
    """The SQLite file a pool of connections reads, to notice it being replaced or deleted.

    An open SQLite connection keeps reading the file it opened, also after
    another file was moved over its path or the path was deleted. The file's
    identity (device, inode) tells: a copy moved into place, or a file
    created anew, has another one.
    """

    def __init__(self, path: str):
        self.path = path
        self.identity = self._identity(missing_ok=True)

    @classmethod
    def of(cls, engine: Engine) -> SQLiteFile | None:
        """The file of ``engine``'s database, or ``None`` (not SQLite, in memory, an SQLite URI)."""
        url = engine.url
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return cls(os.path.abspath(database))

    def __str__(self) -> str:
        return self.path

    def _identity(self, missing_ok: bool) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise PersistenceError(
                f"the model store's SQLite file {self.path} is gone (deleted or moved away)"
            ) from None
        except OSError as exc:
            raise PersistenceError(
                f"the model store's SQLite file {self.path} cannot be read: {exc.strerror}"
            ) from None
        return info.st_dev, info.st_ino

    def replaced(self) -> bool:
        """Whether another file is at the path now (and remember it); raises if there is none.

        Raises :class:`~pipeforge.errors.PersistenceError` naming the file
        when it is gone: a new connection would create an empty store there.
        """
        identity = self._identity(missing_ok=False)
        if identity == self.identity:
            return False
        self.identity = identity
        return True
