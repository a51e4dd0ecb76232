"""Adaptive batching: concurrent ``/predict`` requests merged into one model call.

With threaded server workers (``gunicorn --threads N``) several requests to
one predict service are in flight in one process at once. A model call has a
fixed cost (input validation, dispatch) that dwarfs the per-row cost for
small inputs, so merging their rows into one call serves more requests per
second. The first request to arrive leads: it waits — at most ``max_wait_ms``
— only while other requests to the same service are still being parsed and
can join, then calls the model once for everyone (up to ``max_batch_size``
rows) and hands each request its own rows back.
Batching only where it pays: a request alone is never delayed (with nothing
else in flight the leader goes at once, and it pauses blindly for threads it
cannot see only while the last batch did merge requests), and a request of
more than half ``max_batch_size`` rows calls the model at once, on its own.

If the merged call fails, each request of the batch is retried on its own,
so an input that makes the model fail fails only its own request.

Config (off unless given; a predict service's own ``batching`` parameter
overrides the top-level entry, ``False`` switches it off for that service)::

    'batching': {'max_batch_size': 64, 'max_wait_ms': 5},
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from ..config.keys import check_keys
from ..errors import ConfigError

__all__ = ["Batcher", "batcher_from_settings"]

logger = logging.getLogger(__name__)

_DEFAULTS = {"enabled": True, "max_batch_size": 64, "max_wait_ms": 5.0}
_YIELD_SECONDS = 0.0002  # one blind pause for requests not announced yet
_PATIENCE_SECONDS = 0.0003  # all blind pauses of one batch together


def batcher_from_settings(
    value: Any, *, key: str = "batching", config: Any = None
) -> Batcher | None:
    """A :class:`Batcher` for a ``batching`` setting (a dict, ``True``), or ``None`` if off.

    ``key`` is where the setting is, ``config`` the config it came from (for errors).
    """
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be false or a dict of settings; got {value!r}", key=key)
    check_keys(value, _DEFAULTS, key=key, config=config, what="setting")
    merged = {**_DEFAULTS, **value}
    if not merged["enabled"]:
        return None
    size, wait = merged["max_batch_size"], merged["max_wait_ms"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"must be an integer of at least 1; got {size!r}", key=f"{key}.max_batch_size"
        )
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 10_000:
        raise ConfigError(
            f"must be a number of milliseconds from 0 to 10000; got {wait!r}",
            key=f"{key}.max_wait_ms",
        )
    return Batcher(max_batch_size=size, max_wait_ms=float(wait))


class _Item:
    """One request's rows in a queue; ``signal`` is locked until someone wakes its thread."""

    __slots__ = ("X", "rows", "result", "error", "state", "waiting", "signal")

    def __init__(self, X, rows: int):
        self.X = X
        self.rows = rows
        self.result = None
        self.error: BaseException | None = None
        self.state = "queued"  # -> "lead" (collects and calls) or "done"
        self.waiting = False  # a leader waiting for newcomers (wake it by releasing signal)
        self.signal = threading.Lock()
        self.signal.acquire()


class Batcher:
    """Merges concurrent calls on row blocks into one call (see the module docstring).

    ``max_batch_size`` bounds the rows merged into one call, ``max_wait_ms``
    how long the leader waits for requests still being parsed.
    A request is announced with :meth:`arrive` as early as possible (before
    parsing) and ended with :meth:`leave`; in between, :meth:`run` merges it.

    Each waiting thread blocks on a lock of its own and is woken once: a
    follower when its result is ready (or when it is to lead the next batch),
    a leader when a newcomer joins. No wake-up storms among many threads.
    """

    def __init__(self, max_batch_size: int = 64, max_wait_ms: float = 5.0) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self._lock = threading.Lock()
        self._queues: dict[Any, list[_Item]] = {}
        self._leaders: dict[Any, _Item] = {}  # key -> the item collecting its next batch
        self._expected = 0  # requests announced but not taken into a batch yet
        self._local = threading.local()
        self._merged = False  # whether the last batch merged requests (worth pausing for)

    def __repr__(self) -> str:
        return f"Batcher(max_batch_size={self.max_batch_size}, max_wait_ms={self.max_wait_ms})"

    # -- in-flight accounting ---------------------------------------------------

    def arrive(self, threaded: bool = False) -> bool:
        """Announce a request in this thread: a leader may wait for it to join.

        ``threaded``: the server runs requests in threads of this process
        (WSGI's ``wsgi.multithread``), so a leader yields briefly for the
        others to catch up. Returns whether the request was announced now
        (``False`` if it was already); only that caller calls :meth:`leave`.
        """
        if getattr(self._local, "pending", False):
            return False
        with self._lock:
            self._expected += 1
        self._local.pending = True
        self._local.threaded = threaded
        return True

    def leave(self) -> None:
        """End the request of this thread (joined a batch or not)."""
        if getattr(self._local, "pending", False):
            self._local.pending = False
            with self._lock:
                self._expected -= 1
                for leader in self._leaders.values():  # one fewer to wait for
                    _wake(leader)

    # -- merging --------------------------------------------------------------------

    def run(self, key: Hashable, X: Any, call: Callable[[Any], Any]) -> Any:
        """``call(X)``, possibly merged with concurrent calls of the same ``key``.

        ``key`` must identify what can be merged (the model object and the
        shape of its input); ``call`` must accept the rows of several ``X``
        concatenated and answer one result row per input row.
        """
        item = _Item(X, _rows(X))
        if 2 * item.rows > self.max_batch_size:  # large: nothing to gain by waiting
            self.leave()
            return call(X)
        with self._lock:
            if getattr(self._local, "pending", False):
                self._local.pending = False  # counted as taken when its batch is taken
            else:
                self._expected += 1
            self._queues.setdefault(key, []).append(item)
            leader = self._leaders.get(key)
            if leader is None:
                self._leaders[key] = item
                item.state = "lead"
            else:
                _wake(leader)
        if item.state != "lead":
            item.signal.acquire()  # until done, or chosen to lead the next batch
            if item.state == "done":
                return _outcome(item)
        batch = self._take(key, item, getattr(self._local, "threaded", False))
        try:
            _execute(batch, call)
        finally:
            with self._lock:
                for other in batch:
                    other.state = "done"
                    if other is not item:
                        other.signal.release()
        return _outcome(item)

    def _take(self, key, leader: _Item, threaded: bool) -> list[_Item]:
        """Collect the next batch of ``key`` as its ``leader`` and take it off the queue."""
        with self._lock:
            queue = self._queues[key]
            self._collect(queue, leader, threaded)
            taken, rows = 1, queue[0].rows
            while taken < len(queue) and rows + queue[taken].rows <= self.max_batch_size:
                rows += queue[taken].rows
                taken += 1
            batch = queue[:taken]
            self._merged = taken > 1
            del queue[:taken]
            self._expected -= len(batch)
            if queue:  # the first of the rest leads the next batch
                successor = self._leaders[key] = queue[0]
                successor.state = "lead"
                successor.signal.release()
            else:
                del self._queues[key]
                del self._leaders[key]
        return batch

    def _collect(self, queue: list[_Item], leader: _Item, threaded: bool) -> None:
        """Wait (the lock held, released while asleep) while more requests may join.

        Requests announced but not queued yet are waited for, up to
        ``max_wait_ms``: they are being worked on in this process. Under the
        GIL a thread that has not reached the door cannot be seen, so with
        threaded servers the leader also yields for a moment, again while
        that brings newcomers, but for at most ``_PATIENCE_SECONDS`` in all:
        a blind wait leaves the core idle when the other threads are only
        waiting for their clients. A request alone in a sync worker never waits.
        """
        now = time.monotonic()
        deadline = now + self.max_wait_ms / 1000.0
        blind = threaded and self._merged
        patience = min(deadline, now + _PATIENCE_SECONDS) if blind else now
        while sum(item.rows for item in queue) < self.max_batch_size:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return
            joining = self._joining()
            if not joining and now >= patience:
                return
            before = len(queue)
            self._sleep(leader, remaining if joining else min(remaining, _YIELD_SECONDS))
            if not joining and len(queue) == before:
                patience = now  # a pause brought nobody: stop waiting blindly

    def _joining(self) -> int:
        # Requests announced and not yet queued anywhere: they may still join.
        queued = sum(len(q) for q in self._queues.values())
        return max(0, self._expected - queued)

    def _sleep(self, leader: _Item, seconds: float) -> None:
        # Called with the lock held; a joiner (or a leaving request) wakes us early.
        leader.waiting = True
        self._lock.release()
        try:
            woken = leader.signal.acquire(timeout=seconds)
        finally:
            self._lock.acquire()
        if not woken and not leader.waiting:
            leader.signal.acquire()  # woken just after the timeout: take the wake-up back
        leader.waiting = False


def _wake(leader: _Item) -> None:
    # Called with the batcher's lock held.
    if leader.waiting:
        leader.waiting = False
        leader.signal.release()


def _rows(X) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape else len(X)


def _concat(parts: list):
    first = parts[0]
    if hasattr(first, "iloc"):  # pandas
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    if hasattr(first, "shape"):
        import numpy as np

        return np.concatenate(parts)
    merged = []
    for part in parts:
        merged.extend(part)
    return merged


def _slice(y, start: int, stop: int):
    if hasattr(y, "iloc"):
        return y.iloc[start:stop]
    return y[start:stop]


def _execute(batch: list[_Item], call: Callable) -> None:
    """Call once for the whole batch; if that fails, once per request (errors stay apart)."""
    if len(batch) > 1:
        try:
            y = call(_concat([item.X for item in batch]))
            if _rows(y) != sum(item.rows for item in batch):
                raise ValueError("the model answered another number of rows than it was given")
        except Exception as exc:
            logger.debug("merged call of %d requests failed (%r); one by one", len(batch), exc)
        else:
            start = 0
            for item in batch:
                item.result = _slice(y, start, start + item.rows)
                start += item.rows
            return
    for item in batch:
        try:
            item.result = call(item.X)
        except Exception as exc:
            item.error = exc


def _outcome(item: _Item):
    if item.error is not None:
        error, item.error = item.error, None
        raise error
    return item.result
