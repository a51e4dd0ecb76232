"""The SSE events and call statistics of the Redis online store: what monitoring reads.

Events go to a Redis stream (``XADD … MAXLEN ~``, written by
:mod:`pipeforge.online.redis_learn`) that every SSE response reads with
``XREAD BLOCK``; a stream says it is listening with a key that expires
(so predictions are announced only while someone listens). Each process's
call statistics are fields of one hash, one set per process and endpoint,
summed by ``GET /api/stats``.
"""

from __future__ import annotations

import re

from .redis_access import RedisAccess, text
from .store import LISTENER_TTL, Event

__all__ = ["RedisEvents"]


class RedisEvents(RedisAccess):
    """Events and statistics, the monitoring part of :class:`~pipeforge.online.redis_store.RedisStore`."""

    def _write_stats(self, rows: list[tuple]) -> None:
        with self._redis_errors() as r:
            pipe = r.pipeline(transaction=True)
            key = self.prefix + "stats"
            for process, endpoint, n, total, ewm, at in rows:
                field = f"{process}|{endpoint}"
                pipe.hincrby(key, field + "|n", n)
                pipe.hincrbyfloat(key, field + "|total", total)
                pipe.hset(key, mapping={field + "|ewm": ewm, field + "|at": at})
            pipe.execute()

    def stats(self) -> list[dict]:
        self.flush_stats()
        with self._redis_errors() as r:
            raw = r.hgetall(self.prefix + "stats")
        rows: dict[tuple[str, str], dict] = {}
        for field, value in raw.items():
            process, endpoint, what = text(field).rsplit("|", 2)
            rows.setdefault(
                (process, endpoint),
                {"endpoint": endpoint, "n": 0, "total": 0.0, "ewm": 0.0, "at": 0.0},
            )[what] = float(value)
        return list(rows.values())

    def last_event_id(self) -> str:
        with self._redis_errors() as r:
            newest = r.xrevrange(self.prefix + "events", count=1)
        return text(newest[0][0]) if newest else "0-0"

    def listen(self) -> None:
        with self._redis_errors() as r:
            r.set(self.prefix + "listeners", "1", px=int(LISTENER_TTL * 1000))

    def events(self, cursor: str, timeout: float) -> tuple[str, list[tuple[str, Event]]]:
        if not re.fullmatch(r"\d+-\d+", str(cursor)):
            cursor = self.last_event_id()
        with self._redis_errors() as r:
            found = r.xread(
                {self.prefix + "events": cursor}, count=500, block=max(1, int(timeout * 1000))
            )
        out = []
        for _stream, entries in found or []:
            for event_id, fields in entries:
                cursor = text(event_id)
                out.append((cursor, Event(text(fields[b"kind"]), text(fields[b"data"]))))
        return cursor, out
