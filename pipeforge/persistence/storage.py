"""What every built-in persister shares: turning a model into chunks of bytes and back.

Models are pickled (pickle protocol 5 by default, or joblib) straight into a compressing stream
that hands out fixed-size chunks, and read back through a stream that
inflates those chunks lazily, so neither direction ever holds a second
full copy of the model. Compression (zlib, a fast level by default) runs
on a couple of worker threads, one independent zlib member per block, so
storing a large model costs little more than pickling it.
"""

from __future__ import annotations

import collections
import contextlib
import io
import numbers
import os
import pickle
import sys
import warnings
import zlib
from datetime import datetime, timezone

from ..errors import ConfigError, UnknownVersionError
from ..interfaces import ModelPersister, annotate
from .upgrade import UpgradeSteps, check_target, new_stamp

__all__ = ["PersisterBase", "library_versions", "dump_chunks", "load_chunks", "DEFAULT_COMPRESS"]

DEFAULT_COMPRESS = 1
PICKLERS = ("joblib", "pickle")
BLOCK = 1024 * 1024
_PIECE = 256 * 1024
NO_ACTIVE = "no active model; fit one with pf-fit or activate one with pf-admin activate"


def db_version() -> str:
    """The store format version a fresh store records (pipeforge's own version)."""
    from .. import __version__

    return __version__


def library_versions() -> dict[str, str]:
    """The versions of the libraries a stored model depends on."""
    import platform

    import sklearn

    return {
        "pipeforge": db_version(),
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def warn_library_mismatch(metadata: dict, version: int) -> None:
    """Warn when ``metadata`` says the model was stored under other library versions."""
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


def json_default(obj):
    """Make metadata JSON-safe: numpy scalars become numbers, the rest strings."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def as_version(version) -> int | None:
    """``3``, ``'3'`` → ``3``; anything that is no version number → ``None``."""
    if isinstance(version, numbers.Integral) and not isinstance(version, bool):
        return int(version)
    if isinstance(version, str) and version.strip().isdigit():
        return int(version.strip())
    return None


def temp_name(target: str) -> str:
    """A fresh name next to ``target`` (same file system, so ``os.replace`` is atomic)."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{os.urandom(16).hex()}.tmp")


def trim_heap() -> None:
    """Give freed memory back to the OS (glibc keeps unpickling's temporaries otherwise)."""
    if sys.platform.startswith("linux"):
        import ctypes  # only here: the store's listing scripts never need it

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class ChunkSink(io.RawIOBase):
    """A write-only stream that compresses and calls ``emit(index, chunk)`` per chunk."""

    def __init__(self, emit, chunk_size: int, level: int):
        self._emit = emit
        self._size = chunk_size
        self._level = level
        self._block = bytearray()
        self._out = bytearray()
        self._jobs: collections.deque = collections.deque()
        self._pool = None
        if level:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(2, "pipeforge-compress")
        self.count = 0
        self.stored_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if not self._level:
            self._out += view
        else:
            while view:
                room = BLOCK - len(self._block)
                self._block += view[:room]
                view = view[room:]
                if len(self._block) >= BLOCK:
                    self._submit()
        self._emit_full()
        return size

    def _submit(self) -> None:
        block, self._block = self._block, bytearray()
        self._jobs.append(self._pool.submit(zlib.compress, block, self._level))
        while len(self._jobs) > 4:  # bound the memory in flight
            self._out += self._jobs.popleft().result()

    def _emit_full(self, final: bool = False) -> None:
        while len(self._out) >= self._size or (final and self._out):
            size = min(self._size, len(self._out))
            chunk = bytes(self._out[:size])
            del self._out[:size]
            self._emit(self.count, chunk)
            self.count += 1
            self.stored_bytes += len(chunk)

    def finish(self) -> None:
        """Compress and emit what is left."""
        if self._level:
            if self._block or not self._jobs and not self.count:
                self._submit()
            while self._jobs:
                self._out += self._jobs.popleft().result()
        self._emit_full(final=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        super().close()


# How stored bytes are compressed: zlib members (pipeforge), gzip (Palladium's stores), or not.
_WBITS = {"zlib": zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}
COMPRESSIONS = ("zlib", "gzip", "none")


def _wbits(compression: bool | str) -> int | None:
    if compression is True:
        return _WBITS["zlib"]
    if compression in (False, None, "none"):
        return None
    return _WBITS[compression]


class ChunkSource(io.RawIOBase):
    """A read-only stream over an iterator of chunks, inflating (possibly several members) lazily.

    ``compression`` is ``"zlib"`` (or ``True``), ``"gzip"`` or ``"none"`` (or ``False``).
    """

    def __init__(self, chunks, compression: bool | str):
        self._chunks = iter(chunks)
        self._wbits = _wbits(compression)
        self._z = None if self._wbits is None else zlib.decompressobj(self._wbits)
        self._chunk = memoryview(b"")
        self._carry = b""
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            if not self._fill():
                return 0
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _piece(self):
        """The next slice of stored bytes (small, so zlib never copies a big tail)."""
        if self._carry:
            piece, self._carry = self._carry, b""
            return piece
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._chunk = memoryview(chunk)
        piece, self._chunk = self._chunk[:_PIECE], self._chunk[_PIECE:]
        return piece

    def _fill(self) -> bool:
        z = self._z
        if z is None:
            piece = self._piece()
            self._out = memoryview(piece or b"")
            return piece is not None
        if z.unconsumed_tail:
            data = z.decompress(z.unconsumed_tail, BLOCK)
        else:
            piece = self._piece()
            if piece is None:
                return False
            data = z.decompress(piece, BLOCK)
        if z.eof:  # one member ends; another may follow
            self._carry = z.unused_data
            self._z = zlib.decompressobj(self._wbits)
        self._out = memoryview(data)
        return True


def dump_chunks(obj, emit, chunk_size: int, level: int, pickler: str = "pickle") -> ChunkSink:
    """Pickle ``obj`` straight into compressed chunks handed to ``emit(index, chunk)``.

    Returns the finished sink (``count`` chunks, ``stored_bytes`` in all).
    """
    with ChunkSink(emit, chunk_size, level) as sink:
        if pickler == "joblib":
            import joblib

            joblib.dump(obj, sink)
        else:
            pickle.dump(obj, sink, protocol=5)
        sink.finish()
    return sink


def load_chunks(chunks, compression: bool | str, pickler: str = "pickle"):
    """Unpickle from an iterable of stored chunks, inflating them lazily.

    ``compression`` is ``"zlib"``, ``"gzip"`` or ``"none"`` (``True``/``False``
    for zlib or nothing).
    """
    reader = io.BufferedReader(ChunkSource(chunks, compression), buffer_size=BLOCK)
    if pickler == "joblib":
        import joblib

        obj = joblib.load(reader)
    else:
        obj = pickle.load(reader)
    trim_heap()
    return obj


class PersisterBase(ModelPersister):
    """Validation, annotation, (de)serialising and upgrading for the built-in persisters."""

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
        if self.pickler not in PICKLERS:
            raise ConfigError(
                f"parameter 'pickler' of {name} must be one of {', '.join(PICKLERS)}; "
                f"got {self.pickler!r} instead"
            )
        self._level = level

    @staticmethod
    def _annotate(model, version: int) -> dict:
        current = dict(getattr(model, "__metadata__", None) or {})
        info = {
            "version": version,
            "train_timestamp": current.get("train_timestamp")
            or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "library_versions": library_versions(),
        }
        return dict(annotate(model, info))

    @staticmethod
    def _saved_metadata(model):
        saved = getattr(model, "__metadata__", None)
        return dict(saved) if saved is not None else None

    @staticmethod
    def _restore(model, saved) -> None:
        with contextlib.suppress(AttributeError):
            if saved is None:
                del model.__metadata__
            else:
                model.__metadata__ = saved

    def _dump(self, model, emit, chunk_size: int) -> ChunkSink:
        return dump_chunks(model, emit, chunk_size, self._level, self.pickler)

    @staticmethod
    def _load(chunks, compression: str, pickler: str):
        return load_chunks(chunks, compression, pickler)

    @staticmethod
    def _resolve(version, available) -> int:
        number = as_version(version)
        if number is None or number not in available:
            raise UnknownVersionError(version if number is None else number, sorted(available))
        return number

    def upgrade(self, from_version: str | None = None, to_version: str | None = None) -> list[str]:
        """Import models Palladium wrote here, run the upgrade steps, record the new ``db-version``.

        Returns what was done (the versions of the steps that ran, a line on
        each import). ``to_version`` may not be newer than the installed
        pipeforge, and the recorded version never goes down.
        """
        target = check_target(to_version, db_version())
        recorded = self.list_properties().get("db-version")
        ran = self._import_foreign()
        ran += self.upgrade_steps.run(self, from_version or recorded or "0", target)
        stamp = new_stamp(recorded, target)
        if stamp is not None:
            self._set_property("db-version", stamp)
        return ran

    def _import_foreign(self) -> list[str]:
        """Bring in models another program (Palladium) wrote into this store; see the persisters."""
        return []

    def _set_property(self, name: str, value: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _merged(current: dict, changes: dict) -> dict:
        """``current`` updated with ``changes`` (not the version), checked to be JSON."""
        import json

        if not isinstance(changes, dict):
            raise TypeError(f"metadata changes must be a dict; got {type(changes).__name__}")
        if "version" in changes and changes["version"] != current.get("version"):
            raise ValueError("a stored model's version cannot be changed")
        merged = {**current, **changes}
        json.dumps(merged, default=json_default)
        return merged
