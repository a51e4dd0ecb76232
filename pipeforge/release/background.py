"""A bounded queue with one worker thread: how the release machinery leaves the request path.

:class:`Lane` takes items without ever blocking (a full queue drops the item
and counts it) and hands them, in batches, to a function running on a
daemon thread of its own. The thread starts with the first item of each
process (a forked server worker gets its own) and what is queued is handed
over at process exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Lane"]

logger = logging.getLogger(__name__)


class _Mark:
    """A flush request travelling through the queue behind the items before it."""

    def __init__(self) -> None:
        self.done = threading.Event()


class Lane:
    """Items queued by the request path, processed in batches by one thread.

    ``handle(batch)`` gets at most ``batch_size`` items, as soon as that many
    are waiting or ``flush_seconds`` after the first of them; ``tick()`` (if
    given) runs every ``tick_seconds`` on the same thread. ``counted(event,
    n)`` is told ``dropped`` (queue full) and ``failed`` (``handle`` raised).
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[Any]], None],
        *,
        size: int,
        batch_size: int = 1,
        flush_seconds: float = 0.0,
        tick: Callable[[], None] | None = None,
        tick_seconds: float = 60.0,
    ) -> None:
        self.name = name
        self.handle = handle
        self.size = size
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.tick = tick
        self.tick_seconds = tick_seconds
        self.counts: dict[str, int] = {"dropped": 0, "failed": 0}
        self._observers: list[Callable[[str, int], None]] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(size)
        self._pid: int | None = None
        self._stopped = threading.Event()

    def observe(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(event, n)`` for ``dropped`` and ``failed`` items."""
        self._observers.append(callback)

    def _count(self, event: str, n: int) -> None:
        with self._lock:
            self.counts[event] = self.counts.get(event, 0) + n
        for callback in self._observers:
            try:
                callback(event, n)
            except Exception:
                logger.exception("an observer of %s failed", self.name)

    def put(self, item: Any) -> bool:
        """Queue ``item``; ``False`` (and counted) when the queue is full. Never blocks."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count("dropped", 1)
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:  # forked: the parent's queue and thread are not ours
                self._queue = queue.Queue(self.size)
            self._pid = os.getpid()
            self._stopped.clear()
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            thread.start()
            atexit.register(_close_at_exit, weakref.ref(self))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued before this call is handled; ``False`` on timeout."""
        if self._pid != os.getpid():
            return True  # nothing was queued in this process
        mark = _Mark()
        try:
            self._queue.put(mark, timeout=timeout)
        except queue.Full:
            return False
        return mark.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Handle what is queued, then stop the thread."""
        if self._pid == os.getpid() and not self._stopped.is_set():
            self.flush(timeout)
            self._stopped.set()
            try:
                self._queue.put_nowait(None)  # wake the thread up
            except queue.Full:
                pass

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stopped.is_set():
            if self.tick is not None and time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + self.tick_seconds
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            batch, marks = self._collect(first)
            if batch:
                try:
                    self.handle(batch)
                except Exception:
                    logger.exception("%s could not handle %d items", self.name, len(batch))
                    self._count("failed", len(batch))
            for mark in marks:
                mark.done.set()

    def _collect(self, first: Any) -> tuple[list[Any], list[_Mark]]:
        batch: list[Any] = []
        marks: list[_Mark] = []
        item = first
        deadline = time.monotonic() + self.flush_seconds
        while True:
            if isinstance(item, _Mark):
                marks.append(item)
                if self._queue.empty():
                    return batch, marks
            elif item is not None:
                batch.append(item)
            if len(batch) >= self.batch_size:
                return batch, marks
            wait = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch, marks

    def _tick(self) -> None:
        assert self.tick is not None
        try:
            self.tick()
        except Exception:
            logger.exception("%s: the periodic task failed", self.name)


def _close_at_exit(ref: weakref.ref[Lane]) -> None:
    lane = ref()
    if lane is not None:
        lane.close(timeout=5.0)
