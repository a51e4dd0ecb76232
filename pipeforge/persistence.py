"""Model persisters: where fitted models are kept under integer versions.

:class:`Database` keeps models in an SQL database (SQLite by default,
PostgreSQL for deployments), :class:`File` in files on disk. Both pickle
(joblib or pickle) through a streaming zlib layer, so neither writing nor
reading ever holds a second full copy of a model in memory. Version
numbers are claimed inside the write's transaction (or under a file lock)
and never reused. :class:`~pipeforge.model_cache.CachedUpdatePersister`
wraps either one with an in-process cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import numbers
import os
import pickle
import platform
import re
import threading
import uuid
import warnings
import weakref
import zlib
from datetime import UTC, datetime

from .errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnknownVersionError,
)
from .interfaces import ModelPersister, annotate
from .model_cache import CachedUpdatePersister
from .upgrade import UpgradeSteps

__all__ = ["Database", "File", "CachedUpdatePersister"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
DEFAULT_COMPRESS = 1
_PICKLERS = ("joblib", "pickle")
_SLICE = 1024 * 1024
_NO_ACTIVE = "no active model; fit one with pf-fit or activate one with pf-admin activate"


def _db_version() -> str:
    from . import __version__

    return __version__


def library_versions() -> dict[str, str]:
    """The versions of the libraries a stored model depends on."""
    import sklearn

    return {
        "pipeforge": _db_version(),
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def _warn_library_mismatch(metadata: dict, version: int) -> None:
    stored = metadata.get("library_versions")
    if not isinstance(stored, dict):
        return
    running = library_versions()
    differ = sorted(k for k in stored if k in running and str(stored[k]) != running[k])
    if differ:
        then = ", ".join(f"{k} {stored[k]}" for k in differ)
        now = ", ".join(f"{k} {running[k]}" for k in differ)
        warnings.warn(
            f"model version {version} was stored with {then} but is loaded with {now}; "
            "it may behave differently or fail",
            UserWarning,
            stacklevel=3,
        )


def _json_default(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def _as_version(version) -> int | None:
    if isinstance(version, numbers.Integral) and not isinstance(version, bool):
        return int(version)
    if isinstance(version, str) and version.strip().isdigit():
        return int(version.strip())
    return None


def _temp_name(target: str) -> str:
    """A fresh name next to ``target`` (same file system, so ``os.replace`` is atomic)."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")


class _ChunkSink(io.RawIOBase):
    """A write-only stream that compresses and hands out fixed-size chunks."""

    def __init__(self, emit, chunk_size: int, level: int):
        self._emit = emit
        self._size = chunk_size
        self._z = zlib.compressobj(level) if level else None
        self._buf = bytearray()
        self.count = 0
        self.stored_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _SLICE):
            piece = view[start : start + _SLICE]
            self._buf += self._z.compress(piece) if self._z else piece
            while len(self._buf) >= self._size:
                self._flush(self._size)
        return len(view)

    def _flush(self, size: int) -> None:
        chunk = bytes(self._buf[:size])
        del self._buf[:size]
        self._emit(self.count, chunk)
        self.count += 1
        self.stored_bytes += len(chunk)

    def finish(self) -> None:
        if self._z:
            self._buf += self._z.flush()
        while self._buf:
            self._flush(min(self._size, len(self._buf)))


class _ChunkSource(io.RawIOBase):
    """A read-only stream over an iterator of (compressed) chunks, inflating lazily."""

    def __init__(self, chunks, compressed: bool):
        self._chunks = iter(chunks)
        self._z = zlib.decompressobj() if compressed else None
        self._pending = b""
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            if not self._fill(len(view)):
                return 0
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self, want: int) -> bool:
        if not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                rest = self._z.flush() if self._z else b""
                self._out = memoryview(rest)
                return bool(rest)
            self._pending = chunk
        if self._z is None:
            self._out, self._pending = memoryview(self._pending), b""
        else:
            data = self._z.decompress(self._pending, max(min(want, _SLICE), 65536))
            self._pending = self._z.unconsumed_tail
            self._out = memoryview(data)
        return True


class _Persister(ModelPersister):
    """What every concrete persister shares: validation, annotation, (de)serialising."""

    upgrade_steps = UpgradeSteps()

    def _check_common(self) -> None:
        name = type(self).__name__
        level = self.compress
        if isinstance(level, bool):
            level = DEFAULT_COMPRESS if level else 0
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise ConfigError(
                f"parameter 'compress' of {name} must be a zlib level from 0 (off) to 9 "
                f"or a bool; got {self.compress!r} instead"
            )
        if self.pickler not in _PICKLERS:
            raise ConfigError(
                f"parameter 'pickler' of {name} must be one of {', '.join(_PICKLERS)}; "
                f"got {self.pickler!r} instead"
            )
        self._level = level

    @staticmethod
    def _annotate(model, version: int) -> dict:
        current = dict(getattr(model, "__metadata__", None) or {})
        info = {
            "version": version,
            "train_timestamp": current.get("train_timestamp")
            or datetime.now(UTC).isoformat(timespec="seconds"),
            "library_versions": library_versions(),
        }
        return dict(annotate(model, info))

    @staticmethod
    def _restore(model, saved) -> None:
        if saved is None:
            with contextlib.suppress(AttributeError):
                del model.__metadata__
        else:
            with contextlib.suppress(AttributeError):
                model.__metadata__ = saved

    def _dump(self, model, sink: _ChunkSink) -> None:
        if self.pickler == "joblib":
            import joblib

            joblib.dump(model, sink)
        else:
            pickle.dump(model, sink, protocol=5)
        sink.finish()

    @staticmethod
    def _load(stream: io.RawIOBase, pickler: str):
        reader = io.BufferedReader(stream, buffer_size=_SLICE)
        if pickler == "joblib":
            import joblib

            return joblib.load(reader)
        return pickle.load(reader)

    def _resolve(self, version, available) -> int:
        number = _as_version(version)
        if number is None or number not in available:
            raise UnknownVersionError(version if number is None else number, sorted(available))
        return number

    def upgrade(self, from_version: str | None = None, to_version: str | None = None) -> list[str]:
        """Run the registered upgrade steps and record the new ``db-version``."""
        from_version = from_version or self.list_properties().get("db-version", "0")
        to_version = to_version or _db_version()
        ran = self.upgrade_steps.run(self, from_version, to_version)
        self._set_property("db-version", str(to_version))
        return ran

    def _set_property(self, name: str, value: str) -> None:
        raise NotImplementedError


class Database(_Persister):
    """Models pickled into an SQL database, in chunks of ``chunk_size`` bytes.

    Four tables (suffixed with ``table_postfix``): ``pipeforge_models``
    (version, metadata), ``pipeforge_model_chunks`` (version, index, bytes),
    ``pipeforge_properties`` and ``pipeforge_counters`` (the version
    counter, bumped in the same transaction that stores the model).
    """

    upgrade_steps = UpgradeSteps()

    def __init__(
        self,
        url: str = "sqlite:///model.db",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        table_postfix: str = "",
        compress: int | bool = DEFAULT_COMPRESS,
        poolclass=None,
        pickler: str = "joblib",
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
                from .factory import resolve_dotted_name

                poolclass = resolve_dotted_name(poolclass)
            if poolclass is not None:
                options["poolclass"] = poolclass
            if self.url.startswith("sqlite"):
                options.setdefault("connect_args", {}).setdefault("timeout", 60)
            try:
                engine = sa.create_engine(self.url, **options)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise ConfigError(
                    f"parameter 'url' of Database must be a usable SQLAlchemy URL; "
                    f"got {self.url!r} instead ({exc})"
                ) from exc
            self._tables = self._define_tables(sa)
            self._create(engine, sa)
            self._engine, self._pid = engine, os.getpid()
            # Close pooled connections when this persister goes away, not at interpreter exit.
            self._finalizer = weakref.finalize(self, engine.dispose)
            return engine

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
            (t["properties"], {"name": "db-version", "value": _db_version()}),
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
        saved = getattr(model, "__metadata__", None)
        saved = dict(saved) if saved is not None else None
        try:
            with engine.begin() as conn:
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

                sink = _ChunkSink(emit, self.chunk_size, self._level)
                try:
                    self._dump(model, sink)
                    text = json.dumps(metadata, default=_json_default)
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
            if version is None:
                version = self._get_property(conn, "active-model")
                if version is None:
                    raise NoModelError(_NO_ACTIVE)
            number = _as_version(version)
            row = None
            if number is not None:
                row = conn.execute(
                    sa.select(t["models"]).where(t["models"].c.version == number)
                ).first()
            if row is None:
                self._resolve(version, self._available(conn))
                raise UnknownVersionError(number, self._available(conn))  # deleted meanwhile
            metadata = json.loads(row.metadata)
            _warn_library_mismatch(metadata, number)
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

            stream = _ChunkSource(pieces(), compressed=row.compression == "zlib")
            return self._load(stream, row.pickler)

    def activate(self, version) -> None:
        with self._connect().begin() as conn:
            self._lock(conn)
            number = self._resolve(version, self._available(conn))
            self._put_property(conn, "active-model", str(number))

    def delete(self, version) -> None:
        import sqlalchemy as sa

        t = self._tables
        with self._connect().begin() as conn:
            self._lock(conn)
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
            return [dict(json.loads(m), version=v) for v, m in conn.execute(query)]

    def list_properties(self) -> dict[str, str]:
        import sqlalchemy as sa

        engine = self._connect()
        props = self._tables["properties"]
        with engine.connect() as conn:
            return {n: v for n, v in conn.execute(sa.select(props.c.name, props.c.value))}


class File(_Persister):
    """Models pickled to files named by ``path`` (which must contain ``{version}``).

    Next to them live ``<name>-metadata.json`` (the models' metadata),
    ``<name>-properties.json`` and a lock file; versions are claimed under
    an exclusive ``fcntl`` lock, and every file is written to a temporary
    name first and moved into place, so a failed write leaves nothing.
    """

    upgrade_steps = UpgradeSteps()

    def __init__(
        self,
        path: str = "model-{version}.pickle",
        compress: int | bool = DEFAULT_COMPRESS,
        pickler: str = "joblib",
    ):
        self.path = path
        self.compress = compress
        self.pickler = pickler
        self._checked = False

    def __repr__(self) -> str:
        return f"File(path={self.path!r})"

    def _check(self) -> None:
        if self._checked:
            return
        if not isinstance(self.path, (str, os.PathLike)) or "{version}" not in str(self.path):
            raise ConfigError(
                "parameter 'path' of File must be a path containing '{version}', "
                f"such as 'model-{{version}}.pickle'; got {self.path!r} instead"
            )
        self._check_common()
        self._checked = True

    def _file(self, version) -> str:
        return str(self.path).replace("{version}", str(version))

    def _sidecar(self, name: str, ext: str = ".json") -> str:
        return os.path.splitext(self._file(name))[0] + ext

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        self._check()
        folder = os.path.dirname(self._file(0)) or "."
        os.makedirs(folder, exist_ok=True)
        with open(self._sidecar("lock", ".lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_json(self, name: str, default):
        self._check()
        try:
            with open(self._sidecar(name), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return default

    def _save_json(self, name: str, data) -> None:
        target = self._sidecar(name)
        tmp = _temp_name(target)
        try:
            with open(tmp, "x", encoding="utf-8") as handle:
                json.dump(data, handle, default=_json_default, indent=1)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _props(self) -> dict:
        return self._load_json("properties", None) or {"db-version": _db_version()}

    def _set_property(self, name: str, value: str | None) -> None:
        with self._locked():
            props = self._props()
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
            self._save_json("properties", props)

    def write(self, model) -> int:
        saved = getattr(model, "__metadata__", None)
        saved = dict(saved) if saved is not None else None
        with self._locked():
            props = self._props()
            models = self._load_json("metadata", [])
            known = [m["version"] for m in models]
            version = max([props.get("_last-version", 0), *known]) + 1
            props["_last-version"] = version
            self._save_json("properties", props)
            target = self._file(version)
            tmp = _temp_name(target)
            try:
                metadata = self._annotate(model, version)
                with open(tmp, "xb") as handle:
                    compression = "zlib" if self._level else "none"
                    handle.write(f"pipeforge-model 1 {self.pickler} {compression}\n".encode())
                    try:
                        self._dump(
                            model, _ChunkSink(lambda i, d: handle.write(d), _SLICE, self._level)
                        )
                        json.dumps(metadata, default=_json_default)
                    except Exception as exc:
                        raise ModelWriteError(f"cannot store model: {exc}") from exc
                os.replace(tmp, target)
                try:
                    self._save_json("metadata", [*models, metadata])
                except BaseException:
                    os.unlink(target)
                    raise
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                self._restore(model, saved)
                raise
        return version

    def read(self, version=None):
        if version is None:
            version = self._props().get("active-model")
            if version is None:
                raise NoModelError(_NO_ACTIVE)
        models = {m["version"]: m for m in self._load_json("metadata", [])}
        number = self._resolve(version, models)
        _warn_library_mismatch(models[number], number)
        try:
            handle = open(self._file(number), "rb")
        except FileNotFoundError as exc:
            raise PersistenceError(
                f"model version {number} is listed but {exc.filename} is missing"
            ) from exc
        with handle:
            header = handle.readline().decode("ascii", "replace").split()
            if header[:2] != ["pipeforge-model", "1"] or len(header) != 4:
                raise PersistenceError(f"{self._file(number)} is not a pipeforge model file")
            chunks = iter(lambda: handle.read(_SLICE), b"")
            return self._load(_ChunkSource(chunks, compressed=header[3] == "zlib"), header[2])

    def activate(self, version) -> None:
        with self._locked():
            models = self._load_json("metadata", [])
            number = self._resolve(version, [m["version"] for m in models])
            props = self._props()
            props["active-model"] = str(number)
            self._save_json("properties", props)

    def delete(self, version) -> None:
        with self._locked():
            models = self._load_json("metadata", [])
            number = self._resolve(version, [m["version"] for m in models])
            self._save_json("metadata", [m for m in models if m["version"] != number])
            props = self._props()
            if props.get("active-model") == str(number):
                del props["active-model"]
                self._save_json("properties", props)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file(number))

    def list_models(self) -> list[dict]:
        return sorted(self._load_json("metadata", []), key=lambda m: m["version"])

    def list_properties(self) -> dict[str, str]:
        return {k: str(v) for k, v in self._props().items() if not k.startswith("_")}
