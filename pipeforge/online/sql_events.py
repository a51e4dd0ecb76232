"""The event feed of the SQL online store: what the SSE streams read.

Events (``predict``, ``learn``, ``metrics``) are rows of ``pf_online_events``
with an increasing id, written in the transaction of what they announce, and
only while some stream listens (each stream says so every few seconds in
``pf_online_meta``). A stream polls for ids after its cursor. On PostgreSQL
ids are taken when a row is inserted but become visible when its
transaction commits, so a smaller id can appear after a larger one: the
cursor remembers the ids it skipped (``"<last>~<id>@<seen>,…"``) and looks
for them again for :data:`_GAP_SECONDS`. SQLite commits one writer at a
time, so its ids appear in order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .store import LISTENER_TTL, Event, now

if TYPE_CHECKING:
    from .sql_access import DriverConnection, DriverCursor

__all__ = ["SQLEvents"]

_GAP_SECONDS = 10.0  # how long a missing event id may still show up (PostgreSQL commit order)
_KEEP_EVENTS = 2000
INSERT_EVENT = "INSERT INTO {p}events (kind, data, at) VALUES (?, ?, ?)"
TRIM_EVENTS = "DELETE FROM {p}events WHERE id < (SELECT MAX(id) FROM {p}events) - ?"


def _parse_cursor(cursor: str) -> tuple[int, dict[int, float]]:
    """``"<last id>"`` or ``"<last id>~<gap>@<seen>,…"`` (ids missing after ``last`` may still commit)."""
    head, _, tail = str(cursor).partition("~")
    last = int(head)
    gaps = {}
    for item in filter(None, tail.split(",")):
        gap, _, seen = item.partition("@")
        gaps[int(gap)] = float(seen)
    return last, gaps


def _format_cursor(last: int, gaps: dict[int, float]) -> str:
    if not gaps:
        return str(last)
    return f"{last}~" + ",".join(f"{g}@{seen:.1f}" for g, seen in sorted(gaps.items()))


class SQLEvents:
    """The event methods of :class:`~pipeforge.online.sql_store.SQLStore` (a mixin)."""

    if TYPE_CHECKING:  # what SQLStore provides
        poll_interval: float

        def _run(
            self, conn: DriverConnection, text: str, params: Sequence[Any] = ()
        ) -> DriverCursor: ...
        def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _txn(self, write: bool = True) -> AbstractContextManager[DriverConnection]: ...
        def _put_meta(self, conn: DriverConnection, key: str, value: str) -> None: ...

    def _record(self, conn: DriverConnection, events: list[Event]) -> None:
        for statement, params in self._event_statements(events):
            self._run(conn, statement, params)

    def _event_statements(self, events: list[Event]) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements that write ``events`` (and now and then drop the oldest)."""
        if not events:
            return []
        at = now()
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO {p}events (kind, data, at) VALUES (?, ?, ?)",
                (event.kind, event.data, at),
            )
            for event in events
        ]
        counter = self.__dict__.get("_event_count", 0) + len(events)
        self.__dict__["_event_count"] = counter
        if counter % 200 < len(events):
            statements.append((TRIM_EVENTS, (_KEEP_EVENTS,)))
        return statements

    def last_event_id(self) -> str:
        rows = self._read("SELECT MAX(id) FROM {p}events")
        return str(rows[0][0] or 0)

    def listen(self) -> None:
        with self._txn() as conn:
            self._put_meta(conn, "listeners", repr(now() + LISTENER_TTL))

    def events(self, cursor: str, timeout: float) -> tuple[str, list[tuple[str, Event]]]:
        try:
            last, gaps = _parse_cursor(cursor)
        except ValueError:
            last, gaps = int(self.last_event_id()), {}
        deadline = time.monotonic() + timeout
        while True:
            query = "SELECT id, kind, data FROM {p}events WHERE id > ?"
            params: list[Any] = [last]
            if gaps:
                query += " OR id IN (" + ", ".join("?" * len(gaps)) + ")"
                params.extend(gaps)
            rows = self._read(query + " ORDER BY id LIMIT 500", tuple(params))
            found = []
            for event_id, kind, data in rows:
                if event_id in gaps:
                    del gaps[event_id]
                elif event_id > last:
                    seen = now()
                    for missing in range(last + 1, min(event_id, last + 1000)):
                        gaps[missing] = seen
                    last = event_id
                else:
                    continue
                found.append((kind, data, event_id))
            expired = now() - _GAP_SECONDS
            gaps = {g: seen for g, seen in gaps.items() if seen > expired}
            if found or time.monotonic() >= deadline:
                cursor = _format_cursor(last, gaps)
                return cursor, [(str(i), Event(kind, data)) for kind, data, i in found]
            time.sleep(self.poll_interval)
