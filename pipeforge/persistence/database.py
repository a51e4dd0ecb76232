"""Model persisters: where fitted models are kept under integer versions.

:class:`Database` keeps models in an SQL database (SQLite by default,
PostgreSQL for deployments), :class:`~pipeforge.file_persister.File` in
files on disk. Both stream models through
:mod:`pipeforge.model_storage` (pickled, compressed, chunked), so neither
writing nor reading holds a second full copy of a model. Version numbers
are claimed inside the write's transaction and never reused.
:class:`~pipeforge.model_cache.CachedUpdatePersister` wraps either one
with an in-process cache.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import weakref

from ..config_files import path_base, resolve_sqlite_url
from ..errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnknownVersionError,
    UnmigratedStoreError,
)
from .file import File
from .model_cache import CachedUpdatePersister
from .palladium_stores import PalladiumTables, import_into_database, unmigrated_message
from .storage import (
    DEFAULT_COMPRESS,
    NO_ACTIVE,
    PersisterBase,
    as_version,
    db_version,
    json_default,
    warn_library_mismatch,
)
from .upgrade import UpgradeSteps

__all__ = ["Database", "File", "CachedUpdatePersister"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


class Database(PersisterBase):
    """Models pickled into an SQL database, in chunks of ``chunk_size`` bytes.

    Four tables (suffixed with ``table_postfix``): ``pipeforge_models``
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
        poolclass=None,
        pickler: str = "pickle",
        engine_options: dict | None = None,
    ):
        self.url = url
        self.chunk_size = chunk_size
        self.table_postfix = table_postfix
        self.compress = compress
        self.poolclass = poolclass
        self.pickler = pickler
        self.engine_options = engine_options
        self._state_lock = threading.Lock()
        self._engine = None
        self._pid = None
        self._here: str | None = None
        self._palladium: PalladiumTables | None = None

    def initialize_component(self, config) -> None:
        """A relative SQLite file resolves like every path (see ``config_files.path_base``)."""
        self._here = path_base(config)

    def __repr__(self) -> str:
        return f"Database(url={self.url!r}, table_postfix={self.table_postfix!r})"

    # -- setup -----------------------------------------------------------
    def _check(self) -> None:
        def bad(param, expected, got):
            return ConfigError(
                f"parameter {param!r} of Database must be {expected}; got {got!r} instead"
            )

        if not isinstance(self.url, str) or "://" not in self.url:
            raise bad("url", "an SQLAlchemy URL such as 'sqlite:///model.db'", self.url)
        if not isinstance(self.chunk_size, int) or isinstance(self.chunk_size, bool):
            raise bad("chunk_size", "a positive int", self.chunk_size)
        if self.chunk_size <= 0:
            raise bad("chunk_size", "a positive int", self.chunk_size)
        if not isinstance(self.table_postfix, str) or not re.fullmatch(r"\w*", self.table_postfix):
            raise bad("table_postfix", "letters, digits and underscores", self.table_postfix)
        if self.engine_options is not None and not isinstance(self.engine_options, dict):
            raise bad("engine_options", "a dict of create_engine arguments", self.engine_options)
        self._check_common()

    def _connect(self):
        """The engine, created (with the tables) at first use; safe across fork."""
        with self._state_lock:
            if self._engine is not None:
                if self._pid != os.getpid():
                    self._engine.dispose(close=False)
                    self._pid = os.getpid()
                return self._engine
            self._check()
            import sqlalchemy as sa

            options = dict(self.engine_options or {})
            poolclass = self.poolclass
            if isinstance(poolclass, str):
                from ..factory import resolve_dotted_name

                poolclass = resolve_dotted_name(poolclass)
            if poolclass is not None:
                options["poolclass"] = poolclass
            if self.url.startswith("sqlite"):
                options.setdefault("connect_args", {}).setdefault("timeout", 60)
            try:
                url = _usable_driver(resolve_sqlite_url(self.url, self._here))
                engine = sa.create_engine(url, **options)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise ConfigError(
                    f"parameter 'url' of Database must be a usable SQLAlchemy URL; "
                    f"got {self.url!r} instead ({exc})"
                ) from exc
            self._tables = self._define_tables(sa)
            self._create(engine, sa)
            self._palladium = PalladiumTables.find(engine, self.table_postfix)
            self._engine, self._pid = engine, os.getpid()
            # Close pooled connections when this persister goes away, not at interpreter exit.
            self._finalizer = weakref.finalize(self, engine.dispose)
            return engine

    def engine(self):
        """The SQLAlchemy engine (created with the tables at first use), for stores sharing this database."""
        return self._connect()

    def close(self) -> None:
        """Close the database connections; the next use opens new ones."""
        with self._state_lock:
            if self._engine is not None:
                self._finalizer()
                self._engine = None

    def _define_tables(self, sa):
        md = sa.MetaData()
        p = self.table_postfix
        col = sa.Column
        return {
            "md": md,
            "models": sa.Table(
                f"pipeforge_models{p}",
                md,
                col("version", sa.Integer, primary_key=True, autoincrement=False),
                col("metadata", sa.Text, nullable=False),
                col("chunks", sa.Integer, nullable=False),
                col("stored_bytes", sa.BigInteger, nullable=False),
                col("pickler", sa.String(16), nullable=False),
                col("compression", sa.String(16), nullable=False),
            ),
            "chunks": sa.Table(
                f"pipeforge_model_chunks{p}",
                md,
                col("version", sa.Integer, primary_key=True, autoincrement=False),
                col("idx", sa.Integer, primary_key=True, autoincrement=False),
                col("data", sa.LargeBinary, nullable=False),
            ),
            "properties": sa.Table(
                f"pipeforge_properties{p}",
                md,
                col("name", sa.String(64), primary_key=True),
                col("value", sa.Text, nullable=False),
            ),
            "counters": sa.Table(
                f"pipeforge_counters{p}",
                md,
                col("name", sa.String(64), primary_key=True),
                col("value", sa.Integer, nullable=False),
            ),
        }

    def _create(self, engine, sa) -> None:
        t = self._tables
        seeds = [
            (t["counters"], {"name": "model-version", "value": 0}),
            (t["counters"], {"name": "admin", "value": 0}),
            (t["properties"], {"name": "db-version", "value": db_version()}),
        ]
        for attempt in range(3):  # another process may be creating the same tables
            try:
                t["md"].create_all(engine)
                for table, row in seeds:
                    with engine.begin() as conn:
                        key = table.c.name == row["name"]
                        if conn.execute(sa.select(table.c.name).where(key)).first() is None:
                            conn.execute(table.insert().values(**row))
                return
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
                if attempt == 2:
                    raise

    # -- helpers ---------------------------------------------------------
    def _counter(self, conn) -> int:
        import sqlalchemy as sa

        counters = self._tables["counters"]
        query = sa.select(counters.c.value).where(counters.c.name == "model-version")
        return int(conn.execute(query).scalar() or 0)

    def _guard(self, conn) -> None:
        """Refuse to work on a store whose Palladium models pf-upgrade has not imported."""
        palladium = self._palladium
        if palladium is None:
            return
        counter = self._counter(conn)
        pending = [v for v in palladium.versions(conn) if v > counter]
        if pending:
            raise UnmigratedStoreError(
                unmigrated_message(self._describe(), pending, palladium.properties(conn))
            )

    def _available(self, conn) -> list[int]:
        import sqlalchemy as sa

        models = self._tables["models"]
        return [r[0] for r in conn.execute(sa.select(models.c.version))]

    def _lock(self, conn, name: str = "admin") -> None:
        """Take the store's write lock (a row lock; SQLite's write lock)."""
        import sqlalchemy as sa

        counters = self._tables["counters"]
        conn.execute(
            sa.update(counters).where(counters.c.name == name).values(value=counters.c.value)
        )

    def _get_property(self, conn, name: str) -> str | None:
        import sqlalchemy as sa

        props = self._tables["properties"]
        return conn.execute(sa.select(props.c.value).where(props.c.name == name)).scalar()

    def _put_property(self, conn, name: str, value: str | None) -> None:
        import sqlalchemy as sa

        props = self._tables["properties"]
        where = props.c.name == name
        if value is None:
            conn.execute(sa.delete(props).where(where))
        elif conn.execute(sa.update(props).where(where).values(value=value)).rowcount == 0:
            conn.execute(props.insert().values(name=name, value=value))

    def _set_property(self, name: str, value: str) -> None:
        with self._connect().begin() as conn:
            self._lock(conn)
            self._put_property(conn, name, value)

    # -- ModelPersister --------------------------------------------------
    def write(self, model) -> int:
        import sqlalchemy as sa

        engine = self._connect()
        t = self._tables
        saved = self._saved_metadata(model)
        try:
            with engine.begin() as conn:
                self._guard(conn)
                counters = t["counters"]
                version = conn.execute(
                    sa.update(counters)
                    .where(counters.c.name == "model-version")
                    .values(value=counters.c.value + 1)
                    .returning(counters.c.value)
                ).scalar_one()
                metadata = self._annotate(model, version)

                def emit(idx, data):
                    conn.execute(t["chunks"].insert().values(version=version, idx=idx, data=data))

                try:
                    sink = self._dump(model, emit, self.chunk_size)
                    text = json.dumps(metadata, default=json_default)
                except Exception as exc:
                    raise ModelWriteError(f"cannot store model: {exc}") from exc
                conn.execute(
                    t["models"]
                    .insert()
                    .values(
                        version=version,
                        metadata=text,
                        chunks=sink.count,
                        stored_bytes=sink.stored_bytes,
                        pickler=self.pickler,
                        compression="zlib" if self._level else "none",
                    )
                )
        except BaseException:
            self._restore(model, saved)
            raise
        logger.info("stored model version %s (%s bytes)", version, sink.stored_bytes)
        return version

    def read(self, version=None):
        import sqlalchemy as sa

        engine = self._connect()
        t = self._tables
        with engine.connect() as conn:
            self._guard(conn)
            if version is None:
                version = self._get_property(conn, "active-model")
                if version is None:
                    raise NoModelError(NO_ACTIVE)
            number = as_version(version)
            row = None
            if number is not None:
                row = conn.execute(
                    sa.select(t["models"]).where(t["models"].c.version == number)
                ).first()
            if row is None:
                self._resolve(version, self._available(conn))
                raise UnknownVersionError(number, self._available(conn))  # deleted meanwhile
            metadata = json.loads(row.metadata)
            warn_library_mismatch(metadata, number)
            chunks = t["chunks"]

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

            return self._load(pieces(), row.compression, row.pickler)

    def activate(self, version) -> None:
        with self._connect().begin() as conn:
            self._lock(conn)
            self._guard(conn)
            number = self._resolve(version, self._available(conn))
            self._put_property(conn, "active-model", str(number))

    def delete(self, version) -> None:
        import sqlalchemy as sa

        engine = self._connect()
        t = self._tables
        with engine.begin() as conn:
            self._lock(conn)
            self._guard(conn)
            number = self._resolve(version, self._available(conn))
            conn.execute(sa.delete(t["chunks"]).where(t["chunks"].c.version == number))
            conn.execute(sa.delete(t["models"]).where(t["models"].c.version == number))
            if self._get_property(conn, "active-model") == str(number):
                self._put_property(conn, "active-model", None)

    def list_models(self) -> list[dict]:
        import sqlalchemy as sa

        engine = self._connect()
        models = self._tables["models"]
        query = sa.select(models.c.version, models.c.metadata).order_by(models.c.version)
        with engine.connect() as conn:
            self._guard(conn)
            return [dict(json.loads(m), version=v) for v, m in conn.execute(query)]

    def list_properties(self) -> dict[str, str]:
        import sqlalchemy as sa

        engine = self._connect()
        props = self._tables["properties"]
        with engine.connect() as conn:
            return {n: v for n, v in conn.execute(sa.select(props.c.name, props.c.value))}

    def update_metadata(self, version, changes: dict) -> dict:
        """Merge ``changes`` into the stored metadata of ``version`` (e.g. test scores)."""
        import sqlalchemy as sa

        with self._connect().begin() as conn:
            models = self._tables["models"]
            self._lock(conn)
            number = self._resolve(version, self._available(conn))
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
        from sqlalchemy.engine import make_url

        return f"model store {make_url(self.url).render_as_string(hide_password=True)}"

    def _import_foreign(self) -> list[str]:
        """Import the models Palladium wrote into this database (pf-upgrade's first step)."""
        engine = self._connect()
        if self._palladium is None:
            return []
        return import_into_database(self, engine, self._palladium)


def _usable_driver(url):
    """``postgresql://`` means psycopg2; use psycopg 3 when only that one is installed.

    Palladium's configs name PostgreSQL that way, and pipeforge installs psycopg 3.
    """
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg2"):
        return url
    if not importlib.util.find_spec("psycopg"):
        return url
    return parsed.set(drivername="postgresql+psycopg")
