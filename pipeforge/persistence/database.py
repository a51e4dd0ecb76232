"""The SQL model persister: models in a database, under versions claimed in the write's transaction.

:class:`Database` keeps models in an SQL database (SQLite by default,
PostgreSQL for deployments), :class:`~pipeforge.persistence.File` in files
on disk. Both stream models through :mod:`pipeforge.persistence.chunks`
(pickled, compressed, chunked), so neither writing nor reading holds a
second full copy of a model. Version numbers are claimed inside the write's
transaction and never reused. The tables are described in
:mod:`~pipeforge.persistence.tables`, the engine is made by
:mod:`~pipeforge.sql`.

An SQLite store is one file, which may be replaced (a copy moved over it)
or deleted while a server reads it: pooled connections would go on
reading the old, unlinked file for ever. So every use compares the file's
identity (device, inode) with the one the pool was opened on; a new file
closes the pool (and gets the tables if it lacks them), a missing one is a
:class:`~pipeforge.errors.PersistenceError` naming it, never a new empty
store.
:class:`~pipeforge.persistence.CachedUpdatePersister` wraps either one with
an in-process cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..config.files import path_base
from ..errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnknownVersionError,
    UnmigratedStoreError,
)
from ..release.aliases import pointing_at
from ..sql import create_engine, describe_url
from .palladium_stores import PalladiumTables, report_import, unmigrated_message
from .storage import (
    DEFAULT_COMPRESS,
    NO_ACTIVE,
    PersisterBase,
    Stored,
    as_version,
    json_default,
    warn_library_mismatch,
)
from .tables import SQLiteFile, StoreTables
from .upgrade import UpgradeSteps

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["Database"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


class Database(PersisterBase):
    """Models pickled into an SQL database, in chunks of ``chunk_size`` bytes.

    Four tables (suffixed with ``table_postfix``, see
    :class:`~pipeforge.persistence.tables.StoreTables`): ``pipeforge_models``
    (version, metadata), ``pipeforge_model_chunks`` (version, index, bytes),
    ``pipeforge_properties`` and ``pipeforge_counters`` (the version
    counter, bumped in the same transaction that stores the model).

    Models Palladium wrote into the same database (its tables ``models``,
    ``model_chunks``, ``properties``) are imported by :meth:`upgrade`;
    until then every other operation fails with
    :class:`~pipeforge.errors.UnmigratedStoreError`.
    """

    upgrade_steps = UpgradeSteps()

    def __init__(
        self,
        url: str = "sqlite:///model.db",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        table_postfix: str = "",
        compress: int | bool = DEFAULT_COMPRESS,
        poolclass: Any = None,
        pickler: str = "pickle",
        engine_options: dict[str, Any] | None = None,
        format: str = "pickle",
        trusted_types: list[str] | None = None,
        allow_pickle: bool | None = None,
    ):
        self.url = url
        self.chunk_size = chunk_size
        self.table_postfix = table_postfix
        self.compress = compress
        self.poolclass = poolclass
        self.pickler = pickler
        self.engine_options = engine_options
        self.format = format
        self.trusted_types = trusted_types
        self.allow_pickle = allow_pickle
        self._state_lock = threading.Lock()
        self._engine: Engine | None = None
        self._pid: int | None = None
        self._here: str | None = None
        self._palladium: PalladiumTables | None = None
        self._sqlite: SQLiteFile | None = None  # the SQLite file the pool reads, if any

    def initialize_component(self, config: Any) -> None:
        """A relative SQLite file resolves like every path (see ``config.files.path_base``)."""
        self._here = path_base(config)

    def __repr__(self) -> str:
        url = describe_url(self.url) if isinstance(self.url, str) else self.url
        return f"Database(url={url!r}, table_postfix={self.table_postfix!r})"

    # -- setup -----------------------------------------------------------
    def _check(self) -> None:
        def bad(param, expected, got):
            return ConfigError(
                f"parameter {param!r} of Database must be {expected}; got {got!r} instead"
            )

        if not isinstance(self.url, str) or "://" not in self.url:
            shown = describe_url(self.url) if isinstance(self.url, str) else self.url
            raise bad("url", "an SQLAlchemy URL such as 'sqlite:///model.db'", shown)
        if not isinstance(self.chunk_size, int) or isinstance(self.chunk_size, bool):
            raise bad("chunk_size", "a positive int", self.chunk_size)
        if self.chunk_size <= 0:
            raise bad("chunk_size", "a positive int", self.chunk_size)
        if not isinstance(self.table_postfix, str) or not re.fullmatch(r"\w*", self.table_postfix):
            raise bad("table_postfix", "letters, digits and underscores", self.table_postfix)
        if self.engine_options is not None and not isinstance(self.engine_options, dict):
            raise bad("engine_options", "a dict of create_engine arguments", self.engine_options)
        self._check_common()

    def _connect(self) -> Engine:
        """The engine, created (with the tables) at first use; safe across fork."""
        with self._state_lock:
            if self._engine is not None:
                if self._pid != os.getpid():
                    self._engine.dispose(close=False)
                    self._pid = os.getpid()
                if self._sqlite is not None and self._sqlite.replaced():
                    self._reopen(self._engine)
                return self._engine
            self._check()
            engine = create_engine(
                self.url,
                here=self._here,
                poolclass=self.poolclass,
                engine_options=self.engine_options,
            )
            self._tables = StoreTables(self.table_postfix)
            self._tables.create(engine)
            self._palladium = PalladiumTables.find(engine, self.table_postfix)
            self._sqlite = SQLiteFile.of(engine)  # the file exists now
            self._engine, self._pid = engine, os.getpid()
            # Close pooled connections when this persister goes away, not at interpreter exit.
            self._finalizer = weakref.finalize(self, engine.dispose)
            return engine

    def _reopen(self, engine: Engine) -> None:
        """The SQLite file was replaced: read the new one from now on (lock held)."""
        engine.dispose()  # connections in use are closed when they are given back
        logger.warning(
            "the model store's SQLite file %s was replaced; reading the new one", self._sqlite
        )
        self._tables.create(engine)
        self._palladium = PalladiumTables.find(engine, self.table_postfix)

    def engine(self) -> Engine:
        """The SQLAlchemy engine (created with the tables at first use), for stores sharing this database."""
        return self._connect()

    def close(self) -> None:
        """Close the database connections; the next use opens new ones."""
        with self._state_lock:
            if self._engine is not None:
                self._finalizer()
                self._engine = None

    def _guard(self, conn: Connection) -> None:
        """Refuse to work on a store whose Palladium models pf-upgrade has not imported."""
        palladium = self._palladium
        if palladium is None:
            return
        counter = self._tables.last_version(conn)
        pending = [v for v in palladium.versions(conn) if v > counter]
        if pending:
            raise UnmigratedStoreError(
                unmigrated_message(self._describe(), pending, palladium.properties(conn))
            )

    def _set_property(self, name: str, value: str | None, version: int | None = None) -> None:
        with self._connect().begin() as conn:
            self._tables.lock(conn)
            if version is not None:  # an alias: only while its version is stored
                self._resolve(version, self._tables.versions(conn))
            self._tables.put_property(conn, name, value)

    # -- ModelPersister --------------------------------------------------
    def write(self, model: Any) -> int:
        engine = self._connect()
        tables = self._tables
        saved = self._saved_metadata(model)
        try:
            with engine.begin() as conn:
                self._guard(conn)
                version = tables.claim_version(conn)
                metadata = self._annotate(model, version)

                def emit(idx, data):
                    tables.add_chunk(conn, version, idx, data)

                try:
                    sink = self._dump(model, emit, self.chunk_size, version)
                    self._record_digest(model, metadata, sink.digest)
                    text = json.dumps(metadata, default=json_default)
                except Exception as exc:
                    raise ModelWriteError(f"cannot store model: {exc}") from exc
                tables.add_model(
                    conn,
                    version,
                    text,
                    chunks=sink.count,
                    stored_bytes=sink.stored_bytes,
                    pickler=self._format(),
                    compression="zlib" if self._level else "none",
                )
        except BaseException:
            self._restore(model, saved)
            raise
        logger.info("stored model version %s (%s bytes)", version, sink.stored_bytes)
        return version

    def read(self, version: int | str | None = None) -> Any:
        import sqlalchemy as sa

        engine = self._connect()
        tables = self._tables
        with engine.connect() as conn:
            self._guard(conn)
            if version is None:
                version = tables.get_property(conn, "active-model")
                if version is None:
                    raise NoModelError(NO_ACTIVE)
            number = as_version(version)
            row = None
            if number is not None:
                row = conn.execute(
                    sa.select(tables.models).where(tables.models.c.version == number)
                ).first()
            if row is None or number is None:
                self._resolve(version, tables.versions(conn))
                raise UnknownVersionError(number, tables.versions(conn))  # deleted meanwhile
            metadata = json.loads(row.metadata)
            warn_library_mismatch(metadata, number)
            chunks = tables.chunks

            def pieces():
                for idx in range(row.chunks):
                    data = conn.execute(
                        sa.select(chunks.c.data).where(
                            chunks.c.version == number, chunks.c.idx == idx
                        )
                    ).scalar()
                    if data is None:
                        raise PersistenceError(f"model version {number} lost chunk {idx}")
                    yield data

            return self._load(pieces(), row.compression, row.pickler, number, metadata)

    @contextlib.contextmanager
    def _stored(self, version: int) -> Iterator[Stored]:
        """Model ``version``'s stored bytes, as pf-upgrade hashes them."""
        import sqlalchemy as sa

        with self._connect().connect() as conn:  # the chunks are read whole: pf-upgrade only
            t = self._tables
            row = conn.execute(sa.select(t.models).where(t.models.c.version == version)).one()
            query = sa.select(t.chunks.c.data).where(t.chunks.c.version == version)
            yield (
                row.pickler,
                row.compression,
                (r[0] for r in conn.execute(query.order_by(t.chunks.c.idx))),
            )

    def activate(self, version: int | str) -> None:
        with self._connect().begin() as conn:
            tables = self._tables
            tables.lock(conn)
            self._guard(conn)
            number = self._resolve(version, tables.versions(conn))
            tables.put_property(conn, "active-model", str(number))

    def delete(self, version: int | str) -> None:
        import sqlalchemy as sa

        engine = self._connect()
        tables = self._tables
        with engine.begin() as conn:
            tables.lock(conn)
            self._guard(conn)
            number = self._resolve(version, tables.versions(conn))
            conn.execute(sa.delete(tables.chunks).where(tables.chunks.c.version == number))
            conn.execute(sa.delete(tables.models).where(tables.models.c.version == number))
            props = tables.properties
            named = {n: v for n, v in conn.execute(sa.select(props.c.name, props.c.value))}
            for name in pointing_at(named, number):  # the active model and other aliases
                tables.put_property(conn, name, None)

    def list_models(self) -> list[dict]:
        import sqlalchemy as sa

        engine = self._connect()
        models = self._tables.models
        query = sa.select(models.c.version, models.c.metadata).order_by(models.c.version)
        with engine.connect() as conn:
            self._guard(conn)
            return [dict(json.loads(m), version=v) for v, m in conn.execute(query)]

    def list_properties(self) -> dict[str, str]:
        import sqlalchemy as sa

        engine = self._connect()
        props = self._tables.properties
        with engine.connect() as conn:
            return {n: v for n, v in conn.execute(sa.select(props.c.name, props.c.value))}

    def update_metadata(self, version: int | str, changes: dict) -> dict:
        """Merge ``changes`` into the stored metadata of ``version`` (e.g. test scores)."""
        import sqlalchemy as sa

        with self._connect().begin() as conn:
            tables = self._tables
            models = tables.models
            tables.lock(conn)
            number = self._resolve(version, tables.versions(conn))
            text = conn.execute(
                sa.select(models.c.metadata).where(models.c.version == number)
            ).scalar_one()
            metadata = self._merged(dict(json.loads(text), version=number), changes)
            conn.execute(
                sa.update(models)
                .where(models.c.version == number)
                .values(metadata=json.dumps(metadata, default=json_default))
            )
        return metadata

    # -- Palladium's stores --------------------------------------------------
    def _describe(self) -> str:
        """The store's URL for messages, without its password."""
        return f"model store {describe_url(self.url)}"

    def _import_foreign(self) -> list[str]:
        return self.import_palladium()

    def import_palladium(self, palladium: PalladiumTables | None = None) -> list[str]:
        """Import the models Palladium wrote into this database (pf-upgrade's first step).

        Every Palladium version above the version counter comes over
        (metadata as stored, the gzip pickle rechunked, not unpickled); the
        counter moves past the highest number Palladium used; Palladium's
        active version is taken over if pipeforge has none. One
        transaction, holding the store's locks, so no ``pf-fit`` claims a
        number meanwhile. Running it again finds nothing to import.
        ``palladium``: the tables to import (by default Palladium's tables
        with this store's ``table_postfix``, if there are any). Returns what
        was done, one line (or none).
        """
        engine = self._connect()
        palladium = self._palladium if palladium is None else palladium
        if palladium is None:
            return []
        tables = self._tables
        with engine.begin() as conn:
            tables.lock(conn, "model-version")
            tables.lock(conn)
            counter = tables.last_version(conn)
            versions = palladium.versions(conn)
            imported = [v for v in versions if v > counter]
            previous = (tables.get_property(conn, "palladium-imported") or "").split(",")
            skipped = [v for v in versions if v <= counter and str(v) not in previous]
            for version in imported:
                count = size = 0
                for blob in palladium.blobs(conn, version):
                    for start in range(0, len(blob), self.chunk_size):
                        piece = blob[start : start + self.chunk_size]
                        tables.add_chunk(conn, version, count, piece)
                        count, size = count + 1, size + len(piece)
                tables.add_model(
                    conn,
                    version,
                    palladium.metadata(conn, version),
                    chunks=count,
                    stored_bytes=size,
                    pickler="pickle",
                    compression="gzip",
                )
            highest = palladium.highest(conn)
            if highest > counter:
                tables.skip_versions(conn, highest)
            properties = palladium.properties(conn)
            active = properties.get("active-model")  # taken over unless pipeforge has its own
            if active in {str(v) for v in imported} and not tables.get_property(
                conn, "active-model"
            ):
                tables.put_property(conn, "active-model", active)
            else:
                active = None
            if imported:
                done = [p for p in previous if p] + [str(v) for v in imported]
                tables.put_property(conn, "palladium-imported", ",".join(done))
        return report_import(f"tables {palladium.names}", imported, active, skipped, properties)
