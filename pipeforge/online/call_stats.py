"""Each process's call statistics of the online API (``GET /api/stats``), written in the background.

A request only counts in memory; a thread writes the counts once a second,
so answering never waits for the store. Each process writes its own row
(processes never contend for one), and the store sums the rows when asked.
A fork starts a new row and a new thread in the child.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from .records import now

__all__ = ["ProcessStats", "EWM_ALPHA", "STATS_SECONDS"]

logger = logging.getLogger(__name__)

EWM_ALPHA = 0.3  # chantilly's weight of the newest duration
STATS_SECONDS = 1.0  # how often a process writes its call statistics


class ProcessStats:
    """This process's call statistics, counted in memory and written by a thread once a second.

    ``write`` adds ``(process, endpoint, n, total ns, ewm ns, at)`` rows to
    the stored counts (the store's own statement);
    a failed write is logged and its counts are kept for the next one.
    """

    def __init__(self, write: Callable[[list[tuple]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.token = ""
        self._ewm: dict[str, float] = {}
        self._pending: dict[str, list] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, endpoint: str, duration_ns: int) -> None:
        """Count one answered call of ``endpoint`` that took ``duration_ns``."""
        with self._lock:
            if self._pid != os.getpid():  # a new process (fork): new row, new thread
                self._pid = os.getpid()
                self.token = f"{socket.gethostname()}:{self._pid}:{uuid.uuid4().hex[:8]}"
                self._ewm.clear()
                self._pending.clear()
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, name="pipeforge-online-stats", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)
            old = self._ewm.get(endpoint)
            ewm = (
                float(duration_ns)
                if old is None
                else EWM_ALPHA * duration_ns + (1 - EWM_ALPHA) * old
            )
            self._ewm[endpoint] = ewm
            entry = self._pending.setdefault(endpoint, [0, 0.0])
            entry[0] += 1
            entry[1] += duration_ns

    def _run(self) -> None:
        while not self._stop.wait(STATS_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Write what this process counted since the last flush (errors are logged, counts kept)."""
        with self._lock:
            if self._pid != os.getpid() or not self._pending:
                return
            rows = [
                (self.token, e, n, total, self._ewm[e], now())
                for e, (n, total) in self._pending.items()
            ]
            self._pending = {}
        try:
            self._write(rows)
        except Exception:
            logger.warning("writing call statistics failed; retrying later", exc_info=True)
            with self._lock:
                for _token, endpoint, n, total, _ewm, _at in rows:
                    entry = self._pending.setdefault(endpoint, [0, 0.0])
                    entry[0] += n
                    entry[1] += total

    def discard(self) -> None:
        """Forget what was counted and not written yet (the store is being erased)."""
        with self._lock:
            self._pending = {}

    def stop(self) -> None:
        """Stop the writing thread and write what is left (shutdown, tests)."""
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(5.0)
        self.flush()
