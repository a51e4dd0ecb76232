"""Learning and keeping ids in the SQL online store: the statements of the hot path.

A learn is one transaction: take the ``id``'s features (``DELETE …
RETURNING``), lock and count the model with the ``UPDATE`` that moves its
version, learn in the process, append the log entry, commit. How many round
trips that costs depends on the database:

* SQLite runs in the process, so each statement is its own call (``BEGIN
  IMMEDIATE`` takes the database's write lock; five cheap calls).
* PostgreSQL gets two round trips: ``BEGIN`` and one statement whose
  data-modifying ``WITH`` parts delete the id and lock the model, then the
  log entry (and any events) with ``COMMIT``, each sent as one simple query.
  The ``UPDATE`` waits for the row lock of any other learn of the model, and
  the ``DELETE`` for any other learn of the id, which then finds nothing: a
  404, and nothing changed.

A predict with an ``id`` on PostgreSQL is one statement too (see
:meth:`SQLLearn.keep_current`). Ids whose learn never comes are deleted
after the ``online.pending_ttl`` (by ``created``, which is indexed) by a
sweep each process runs at most once a minute; until then a learn ignores
them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .errors import UnknownIdError, UnknownModelError
from .sql_events import INSERT_EVENT, TRIM_EVENTS
from .store import CatchUp, Event, Learning, ModelInfo, Pending, now

if TYPE_CHECKING:
    from .sql_access import DriverConnection, DriverCursor, Folded, SQLAccess

__all__ = ["SQLLearn"]

logger = logging.getLogger(__name__)

_SWEEP_SECONDS = 60.0  # at most this long between two sweeps of expired ids by one process

_MODEL_RETURNING = "name, uid, flavor, version, snapshot_version, n_learnt, source, created"
_LISTENERS = "(SELECT v FROM {p}meta WHERE k = 'listeners')"
_DEFAULT = "(SELECT v FROM {p}meta WHERE k = 'default')"

# The learn's first step on PostgreSQL (sent after "BEGIN; "): take the id, lock the model.
_TAKE_ID = (
    "WITH d AS (DELETE FROM {p}pending WHERE id = ? AND created >= ?"
    " RETURNING model, features, prediction),"
    " u AS (UPDATE {p}models SET version = version + 1, n_learnt = n_learnt + 1"
    " WHERE name = (SELECT model FROM d) RETURNING " + _MODEL_RETURNING + ")"
    " SELECT d.model, d.features, d.prediction, u.name, u.uid, u.flavor, u.version,"
    " u.snapshot_version, u.n_learnt, u.source, u.created, " + _LISTENERS + ""
    " FROM d LEFT JOIN u ON true"
)
_LOCK_MODEL = (
    "UPDATE {p}models SET version = version + 1, n_learnt = n_learnt + 1 WHERE {where}"
    " RETURNING " + _MODEL_RETURNING + ", " + _LISTENERS
)
# A predict with an id on PostgreSQL: look up, and keep the id if the caller's copy is current.
_KEEP = (
    "WITH m AS (SELECT name, uid, flavor, version, snapshot_version FROM {p}models"
    " WHERE name = {name}),"
    " k AS (INSERT INTO {p}pending (id, model, features, prediction, created)"
    " SELECT ?, name, ?, ?, ? FROM m WHERE uid = ? AND version = ?"
    " ON CONFLICT (id) DO UPDATE SET model = excluded.model, features = excluded.features,"
    " prediction = excluded.prediction, created = excluded.created RETURNING 1)"
    " SELECT m.name, m.uid, m.flavor, m.version, m.snapshot_version, " + _LISTENERS + ","
    " (SELECT count(*) FROM k) FROM m"
)
_INSERT_LOG = "INSERT INTO {p}log (uid, version, features, y, delta) VALUES (?, ?, ?, ?, ?)"
# prepared on each PostgreSQL connection at its first learn
_HOT = (_TAKE_ID, _INSERT_LOG, INSERT_EVENT, TRIM_EVENTS)
_UPSERT_PENDING = (
    "INSERT INTO {p}pending (id, model, features, prediction, created)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET model = excluded.model,"
    " features = excluded.features, prediction = excluded.prediction,"
    " created = excluded.created"
)


def _learning_info(row: Sequence[Any]) -> ModelInfo:
    """The model's record before this learn, from the ``UPDATE … RETURNING`` that counted it."""
    name, uid, flavor, version, snapshot_version, n_learnt, source, created = row
    return ModelInfo(
        name,
        uid,
        flavor,
        int(version) - 1,
        int(snapshot_version),
        int(n_learnt) - 1,
        source,
        float(created),
    )


class SQLLearn:
    """The learn and keep methods of :class:`~pipeforge.online.sql_store.SQLStore` (a mixin)."""

    if TYPE_CHECKING:  # what SQLStore provides

        def _access(self) -> SQLAccess: ...
        def _run(
            self, conn: DriverConnection, text: str, params: Sequence[Any] = ()
        ) -> DriverCursor: ...
        def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _write(self, text: str, params: Sequence[Any]) -> None: ...
        def _txn(self, write: bool = True) -> AbstractContextManager[DriverConnection]: ...
        def _record(self, conn: DriverConnection, events: list[Event]) -> None: ...
        def _unknown(
            self, name: str | None, conn: DriverConnection | None = None
        ) -> UnknownModelError: ...
        def pending_ttl(self) -> float | None: ...
        def unknown_id(self, pending_id: str | None) -> UnknownIdError: ...
        def _event_statements(self, events: list[Event]) -> list[tuple[str, tuple[Any, ...]]]: ...
        def _fold(
            self, conn: DriverConnection, uid: str, base: dict[str, Any], after: int, upto: int
        ) -> dict[str, Any]: ...
        def _catch_up(
            self,
            conn: DriverConnection,
            uid: str,
            version: int,
            have_uid: str | None,
            have_version: int,
        ) -> CatchUp: ...

    def _postgres(self) -> bool:
        return self._access().setup()[1] == "postgresql"

    def one_step_predict(self) -> bool:
        return self._postgres()

    def _cutoff(self) -> float:
        """Ids kept before this moment have expired (``-1``: none expire)."""
        ttl = self.pending_ttl()
        return now() - ttl if ttl else -1.0

    def _sweep_due(self) -> bool:
        ttl = self.pending_ttl()
        if not ttl:
            return False
        moment = now()
        if moment < self.__dict__.get("_next_sweep", 0.0):
            return False
        self.__dict__["_next_sweep"] = moment + min(ttl, _SWEEP_SECONDS)
        return True

    def _sweep(self) -> None:
        """Delete the expired ids (one indexed range delete; a failure waits for the next sweep)."""
        try:
            self._write("DELETE FROM {p}pending WHERE created < ?", (self._cutoff(),))
        except Exception:
            logger.warning("deleting expired ids failed; trying again later", exc_info=True)

    # -- predict ---------------------------------------------------------------------------
    def after_predict(self, pending: tuple[str, Pending] | None, events: list[Event]) -> None:
        if pending is None and not events:
            return
        row = None
        if pending is not None:
            key, record = pending
            row = (key, record.model, record.features, record.prediction, now())
        if row is not None and not events:  # (no events: there is a row, see above)
            # One statement is its own transaction: no BEGIN/COMMIT round trips.
            self._write(_UPSERT_PENDING, row)
        else:
            with self._txn() as conn:
                if row is not None:
                    self._run(conn, _UPSERT_PENDING, row)
                self._record(conn, events)
        if row is not None and self._sweep_due():
            self._sweep()

    def keep_current(
        self, name: str | None, uid: str, version: int, pending: tuple[str, Pending]
    ) -> tuple[ModelInfo, bool, bool]:
        key, record = pending
        text = _KEEP.replace("{name}", "?" if name is not None else _DEFAULT)
        params = (key, record.features, record.prediction, now(), uid, version)
        rows = self._read(text, ((name,) if name is not None else ()) + params)
        if not rows:
            raise self._unknown(name)
        model, stored_uid, flavor, stored_version, snapshot_version, listeners, kept = rows[0]
        info = ModelInfo(model, stored_uid, flavor, int(stored_version), int(snapshot_version))
        if kept and self._sweep_due():
            self._sweep()
        return info, listeners is not None and float(listeners) > now(), bool(kept)

    # -- learn -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def learning(self, pending_id: str | None, name: str | None) -> Iterator[Learning]:
        where = "name = ?" if name is not None else "name = " + _DEFAULT
        by_name = (name,) if name is not None else ()
        if self._postgres():
            lock = _LOCK_MODEL.replace("{where}", where)
            with self._access().folded_txn(_HOT + (lock,)) as folded:
                if pending_id is not None:
                    rows = folded.send([(_TAKE_ID, (pending_id, self._cutoff()))], begin=True)
                    if not rows:
                        raise self.unknown_id(pending_id)
                    pending = Pending(*rows[0][:3])
                    name, rows = pending.model, [rows[0][3:]] if rows[0][3] is not None else []
                else:
                    pending, rows = None, folded.send([(lock, by_name)], begin=True)
                learning = self._take(folded.conn, rows, pending, pending_id, name, folded)
                yield learning
                if not learning.committed:
                    raise RuntimeError("a learn left without commit")  # rolls it back
            return
        with self._txn() as conn:
            pending = None
            if pending_id is not None:
                rows = self._run(
                    conn,
                    "DELETE FROM {p}pending WHERE id = ? AND created >= ?"
                    " RETURNING model, features, prediction",
                    (pending_id, self._cutoff()),
                ).fetchall()
                if not rows:
                    raise self.unknown_id(pending_id)
                pending = Pending(*rows[0])
                name, where, by_name = pending.model, "name = ?", (pending.model,)
            # One statement locks the model (SQLite: the write lock BEGIN IMMEDIATE took),
            # counts this learn and reads what the learn needs.
            rows = self._run(conn, _LOCK_MODEL.replace("{where}", where), by_name).fetchall()
            learning = self._take(conn, rows, pending, pending_id, name, None)
            yield learning
            if not learning.committed:
                raise RuntimeError("a learn left without commit")  # rolls the transaction back

    def _take(
        self,
        conn: DriverConnection,
        rows: list[Any],
        pending: Pending | None,
        pending_id: str | None,
        name: str | None,
        folded: Folded | None,
    ) -> _SQLLearning:
        if not rows:
            if pending is not None:
                raise UnknownModelError(
                    f"the model {name!r} that predicted id {pending_id!r} was deleted"
                )
            raise self._unknown(name, conn)
        info = _learning_info(rows[0][:8])
        listeners = rows[0][8]
        learning = _SQLLearning(self, conn, pending, info, folded)
        learning.listening = listeners is not None and float(listeners) > now()
        return learning


class _SQLLearning(Learning):
    def __init__(
        self,
        store: SQLLearn,
        conn: DriverConnection,
        pending: Pending | None,
        model: ModelInfo,
        folded: Folded | None,
    ):
        self.store = store
        self.conn = conn
        self.pending = pending
        self.model = model
        self.folded = folded  # PostgreSQL: sends the statements with COMMIT in one round trip
        self.committed = False
        self.listening = False

    def catch_up(self, have_uid: str | None, have_version: int) -> CatchUp:
        model = self.model
        return self.store._catch_up(self.conn, model.uid, model.version, have_uid, have_version)

    def metrics(self) -> dict[str, Any]:
        store, model = self.store, self.model
        rows = store._run(
            self.conn, "SELECT metrics FROM {p}models WHERE name = ?", (model.name,)
        ).fetchall()
        return store._fold(
            self.conn, model.uid, json.loads(rows[0][0]), model.snapshot_version, model.version
        )

    def commit(
        self,
        *,
        entries: list[tuple[str, str, str | None]],
        learnt: int,
        snapshot: bytes | None = None,
        metrics: dict[str, Any] | None = None,
        keep_log: int = 0,
        events: Sequence[Event] = (),
    ) -> int:
        store, model = self.store, self.model
        version = model.version + learnt
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for i, entry in enumerate(entries):
            statements.append((_INSERT_LOG, (model.uid, model.version + 1 + i, *entry)))
        if learnt != 1:  # the lock counted one learn already
            statements.append(
                (
                    "UPDATE {p}models SET version = version + ?, n_learnt = n_learnt + ?"
                    " WHERE name = ?",
                    (learnt - 1, learnt - 1, model.name),
                )
            )
        if snapshot is not None:
            statements += [
                (
                    "UPDATE {p}snapshots SET version = ?, data = ? WHERE uid = ?",
                    (version, snapshot, model.uid),
                ),
                (
                    "UPDATE {p}models SET snapshot_version = ?, metrics = ? WHERE name = ?",
                    (version, json.dumps(metrics), model.name),
                ),
                (
                    "DELETE FROM {p}log WHERE uid = ? AND version <= ?",
                    (model.uid, version - keep_log),
                ),
            ]
        statements += store._event_statements(list(events))
        if self.folded is not None and snapshot is None:
            # PostgreSQL: the statements and COMMIT in one round trip (a pickle goes apart).
            self.folded.send(statements, commit=True)
        else:
            for statement, bound in statements:
                store._run(self.conn, statement, bound)
            if self.folded is not None:
                self.conn.execute("COMMIT")
        self.committed = True
        return version
