"""Pickled models as compressed chunks of bytes, and back, without a second full copy.

Models are pickled (pickle protocol 5 by default, or joblib, or written in
skops format, see :mod:`~pipeforge.persistence.skops_format`) straight into a
compressing stream that hands out fixed-size chunks (rows of a table, blocks
of a file), and read back through a stream that inflates those chunks
lazily, so neither direction ever holds a second full copy of the model.
Compression (zlib, a fast level by default) runs on a couple of worker
threads, one independent zlib member per block, so storing a large model
costs little more than pickling it. Palladium's gzip pickles are read the
same way.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import sys
import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "dump_chunks",
    "load_chunks",
    "serialize",
    "deserialize",
    "ChunkSink",
    "ChunkSource",
    "COMPRESSIONS",
    "BLOCK",
    "trim_heap",
]

BLOCK = 1024 * 1024  # bytes compressed as one zlib member, and read at a time
_PIECE = 256 * 1024

#: what a :class:`ChunkSink` calls with each chunk: ``emit(index, chunk)``
Emit = Callable[[int, bytes], Any]
#: bytes, bytearray, memoryview and the like
Buffer = Any


def trim_heap() -> None:
    """Give freed memory back to the OS (glibc keeps unpickling's temporaries otherwise)."""
    if sys.platform.startswith("linux"):
        import ctypes  # only here: the store's listing scripts never need it

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class ChunkSink(io.RawIOBase):
    """A write-only stream that compresses and calls ``emit(index, chunk)`` per chunk."""

    def __init__(self, emit: Emit, chunk_size: int, level: int):
        self._emit = emit
        self._size = chunk_size
        self._level = level
        self._block = bytearray()
        self._out = bytearray()
        self._jobs: collections.deque = collections.deque()
        self._pool: ThreadPoolExecutor | None = None
        if level:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(2, "pipeforge-compress")
        self.count = 0
        self.stored_bytes = 0
        self.digest: str | None = None  # set by whoever hashed the chunks emitted

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
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
        assert self._pool is not None  # only a compressing sink submits blocks
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
    return _WBITS[str(compression)]


class ChunkSource(io.RawIOBase):
    """A read-only stream over an iterator of chunks, inflating (possibly several members) lazily.

    ``compression`` is ``"zlib"`` (or ``True``), ``"gzip"`` or ``"none"`` (or ``False``).
    """

    def __init__(self, chunks: Iterable[bytes], compression: bool | str):
        self._chunks = iter(chunks)
        self._wbits = _wbits(compression)
        self._z = None if self._wbits is None else zlib.decompressobj(self._wbits)
        self._chunk = memoryview(b"")
        self._carry = b""
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
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
            assert self._wbits is not None  # there is a z only for compressed bytes
            self._carry = z.unused_data
            self._z = zlib.decompressobj(self._wbits)
        self._out = memoryview(data)
        return True


def serialize(obj: Any, stream: Any, fmt: str = "pickle", trusted: Iterable[str] = ()) -> None:
    """Write ``obj`` to ``stream`` as ``fmt``: ``"pickle"``, ``"joblib"`` or ``"skops"``."""
    if fmt == "joblib":
        import joblib

        joblib.dump(obj, stream)
    elif fmt == "skops":
        from .skops_format import dump_skops

        dump_skops(obj, stream, list(trusted))
    else:
        pickle.dump(obj, stream, protocol=5)


def deserialize(
    reader: Any, fmt: str = "pickle", trusted: Iterable[str] = (), version: int | None = None
) -> Any:
    """Read an object written by :func:`serialize` as ``fmt`` from ``reader``."""
    if fmt == "joblib":
        import joblib

        obj = joblib.load(reader)
    elif fmt == "skops":
        from .skops_format import load_skops

        obj = load_skops(reader, list(trusted), version)
    else:
        obj = pickle.load(reader)
    trim_heap()
    return obj


def dump_chunks(
    obj: Any,
    emit: Emit,
    chunk_size: int,
    level: int,
    pickler: str = "pickle",
    trusted: Iterable[str] = (),
) -> ChunkSink:
    """Serialize ``obj`` (pickle, joblib or skops) straight into compressed chunks for ``emit``.

    ``emit(index, chunk)`` gets each chunk. Returns the finished sink
    (``count`` chunks, ``stored_bytes`` in all).
    """
    with ChunkSink(emit, chunk_size, level) as sink:
        serialize(obj, sink, pickler, trusted)
        sink.finish()
    return sink


def load_chunks(
    chunks: Iterable[bytes],
    compression: bool | str,
    pickler: str = "pickle",
    trusted: Iterable[str] = (),
    version: int | None = None,
) -> Any:
    """Deserialize from an iterable of stored chunks, inflating them lazily.

    ``compression`` is ``"zlib"``, ``"gzip"`` or ``"none"`` (``True``/``False``
    for zlib or nothing); ``pickler`` the format (``"pickle"``, ``"joblib"``,
    ``"skops"``, whose ``trusted`` types extend skops' own).
    """
    reader = io.BufferedReader(ChunkSource(chunks, compression), buffer_size=BLOCK)
    return deserialize(reader, pickler, trusted, version)
