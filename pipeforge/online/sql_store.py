"""The online store in the SQL model database (SQLite by default, PostgreSQL).

The database side (engine, tables, connections, transactions) is
:mod:`pipeforge.online.sql_access`; the SSE feed is
:mod:`pipeforge.online.sql_events`; predict and learn, the hot path, are
:mod:`pipeforge.online.sql_learn`. This module holds the rest.

Exactly once: a learn runs in one transaction that first deletes the
``id``'s stored features (``DELETE … RETURNING``), then locks the model row
with the ``UPDATE`` that counts the learn (SQLite: ``BEGIN IMMEDIATE`` holds
the database's write lock already; PostgreSQL: a row lock), and appends the
log entry with the learn's metrics delta. A second learn of the same ``id``
waits for the first and finds nothing; two learns of one model run one after
the other, on every process and host. An error anywhere rolls all of it back.
SQLite runs in WAL mode (readers never wait for the writer) with
``synchronous=NORMAL`` by default: a committed learn survives a crash of the
server, the last few may be lost on a power cut (``synchronous="FULL"``
keeps them at about 0.2 ms of CPU per write).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..sql import describe_url
from . import metrics
from .errors import StoreError, UnknownModelError
from .sql_access import SQLAccess
from .sql_events import SQLEvents
from .sql_learn import SQLLearn
from .store import CatchUp, ModelInfo, OnlineStore, Seed, new_uid, now

if TYPE_CHECKING:
    from ..config import Config
    from .sql_access import DriverConnection, DriverCursor

__all__ = ["SQLStore"]

_CREATE_LOCK = threading.Lock()

logger = logging.getLogger(__name__)

_MODEL_COLUMNS = "name, uid, flavor, version, snapshot_version, n_learnt, source, created, metrics"


def _info(row: Sequence[Any], with_metrics: bool = True) -> ModelInfo:
    name, uid, flavor, version, snapshot_version, n_learnt, source, created, metrics = row
    return ModelInfo(
        name=name,
        uid=uid,
        flavor=flavor,
        version=int(version),
        snapshot_version=int(snapshot_version),
        n_learnt=int(n_learnt),
        source=source,
        created=float(created),
        metrics=json.loads(metrics) if with_metrics else None,
    )


class SQLStore(SQLLearn, SQLEvents, OnlineStore):
    """Online models and their state in SQL tables (see the module doc).

    ``url`` is an SQLAlchemy URL (SQLite or PostgreSQL); ``None`` uses the
    config's ``model_persister`` database when it is a
    :class:`~pipeforge.persistence.Database`, else ``sqlite:///online.db``
    next to the config. ``synchronous`` is SQLite's setting for writes.
    """

    kind = "sql"

    def __init__(
        self,
        url: str | None = None,
        *,
        synchronous: str = "NORMAL",
        table_prefix: str = "pf_online_",
        engine_options: dict[str, Any] | None = None,
        poll_interval: float = 0.1,
    ):
        self.url = url
        self.synchronous = synchronous
        self.table_prefix = table_prefix
        self.engine_options = engine_options
        self.poll_interval = poll_interval

    def __repr__(self) -> str:
        url = describe_url(self.url) if isinstance(self.url, str) else self.url
        return f"SQLStore(url={url!r})"

    # -- setup --------------------------------------------------------------------------
    def bind(self, config: Config) -> None:
        self.__dict__["_config"] = config

    def _check(self) -> None:
        def bad(param: str, expected: str, got: object) -> ConfigError:
            return ConfigError(
                f"parameter {param!r} of SQLStore must be {expected}; got {got!r} instead"
            )

        if self.url is not None and (not isinstance(self.url, str) or "://" not in self.url):
            raise bad("url", "an SQLAlchemy URL such as 'sqlite:///online.db'", self.url)
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise bad("synchronous", "one of OFF, NORMAL, FULL, EXTRA", self.synchronous)
        if not isinstance(self.table_prefix, str) or not re.fullmatch(
            r"[A-Za-z_]\w*", self.table_prefix
        ):
            raise bad("table_prefix", "letters, digits and underscores", self.table_prefix)
        if not isinstance(self.poll_interval, int | float) or not 0 < self.poll_interval <= 10:
            raise bad("poll_interval", "a number of seconds in (0, 10]", self.poll_interval)

    def _access(self) -> SQLAccess:
        access = self.__dict__.get("_access_obj")
        if access is None:
            with _CREATE_LOCK:
                access = self.__dict__.get("_access_obj")
                if access is None:
                    self._check()
                    access = SQLAccess(
                        self.url,
                        synchronous=self.synchronous,
                        table_prefix=self.table_prefix,
                        engine_options=self.engine_options,
                        config=self.__dict__.get("_config"),
                    )
                    self.__dict__["_access_obj"] = access
        return access

    def close(self) -> None:
        """Write pending statistics, then close every connection this process opened."""
        super().close()
        access = self.__dict__.get("_access_obj")
        if access is not None:
            access.close()

    # The statements below are written with ``{p}`` for the table prefix and ``?`` placeholders.
    def _run(self, conn: DriverConnection, text: str, params: Sequence[Any] = ()) -> DriverCursor:
        return self._access().run(conn, text, params)

    def _sql(self, text: str) -> str:
        return self._access().sql(text)

    def _txn(self, write: bool = True) -> AbstractContextManager[DriverConnection]:
        return self._access().txn(write)

    def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._access().read(text, params)

    def _write(self, text: str, params: Sequence[Any]) -> None:
        self._access().write(text, params)

    # -- flavor, seeding, reset ----------------------------------------------------------
    def flavor(self) -> str | None:
        rows = self._read("SELECT v FROM {p}meta WHERE k = 'flavor'")
        return rows[0][0] if rows else None

    def _put_meta(self, conn: DriverConnection, key: str, value: str) -> None:
        self._run(
            conn,
            "INSERT INTO {p}meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (key, value),
        )

    def ready(self, seeds: list[Seed], flavor: str | None) -> None:
        have = {row[0] for row in self._read("SELECT k FROM {p}meta")}
        missing = [s for s in seeds if f"seeded:{s.name}" not in have]
        if not missing and (flavor is None or "flavor" in have):
            return
        with self._txn() as conn:
            self._seed(conn, missing, flavor)

    def _seed(self, conn: DriverConnection, seeds: list[Seed], flavor: str | None) -> None:
        have = {row[0]: row[1] for row in self._run(conn, "SELECT k, v FROM {p}meta").fetchall()}
        if flavor is not None and "flavor" not in have:
            self._put_meta(conn, "flavor", flavor)
        default = have.get("default")
        for seed in seeds:
            if f"seeded:{seed.name}" in have:
                continue
            self._put_meta(conn, f"seeded:{seed.name}", "1")
            exists = self._run(
                conn, "SELECT 1 FROM {p}models WHERE name = ?", (seed.name,)
            ).fetchall()
            if not exists:
                self._insert_model(conn, seed.name, seed.flavor, seed.blob, "config", seed.metrics)
            if seed.default and default is None:
                self._put_meta(conn, "default", seed.name)
                default = seed.name

    def reset(self, flavor: str, seeds: list[Seed]) -> None:
        self._discard_stats()
        with self._txn() as conn:
            for table in ("meta", "models", "snapshots", "log", "pending", "events", "stats"):
                self._run(conn, f"DELETE FROM {{p}}{table}")
            self._put_meta(conn, "flavor", flavor)
            self._seed(conn, seeds, None)

    # -- models -------------------------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        return self._with_deltas(
            f"SELECT {_MODEL_COLUMNS} FROM {{p}}models ORDER BY created, name", ()
        )

    def model(self, name: str) -> ModelInfo | None:
        infos = self._with_deltas(
            f"SELECT {_MODEL_COLUMNS} FROM {{p}}models WHERE name = ?", (name,)
        )
        return infos[0] if infos else None

    def _with_deltas(self, query: str, params: Sequence[Any]) -> list[ModelInfo]:
        """Model records whose metrics include the deltas logged since their snapshot."""
        with self._txn(write=False) as conn:
            infos = [_info(row) for row in self._run(conn, query, params).fetchall()]
            for info in infos:
                if info.metrics is not None:  # (always read here)
                    info.metrics = self._fold(
                        conn, info.uid, info.metrics, info.snapshot_version, info.version
                    )
        return infos

    def _fold(
        self, conn: DriverConnection, uid: str, base: dict[str, Any], after: int, upto: int
    ) -> dict[str, Any]:
        if upto <= after:
            return base
        rows = self._run(
            conn,
            "SELECT delta FROM {p}log WHERE uid = ? AND version > ? AND version <= ?"
            " AND delta IS NOT NULL ORDER BY version",
            (uid, after, upto),
        ).fetchall()
        for (delta,) in rows:
            base = metrics.merge(base, json.loads(delta))
        return base

    def default(self) -> str | None:
        rows = self._read("SELECT v FROM {p}meta WHERE k = 'default'")
        return rows[0][0] if rows else None

    def _insert_model(
        self,
        conn: DriverConnection,
        name: str,
        flavor: str,
        blob: bytes,
        source: str,
        metrics: dict[str, Any],
    ) -> ModelInfo:
        uid = new_uid()
        created = now()
        row = (name, uid, flavor, 0, 0, 0, source, created, json.dumps(metrics))
        self._run(
            conn,
            f"INSERT INTO {{p}}models ({_MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        self._run(
            conn, "INSERT INTO {p}snapshots (uid, version, data) VALUES (?, 0, ?)", (uid, blob)
        )
        return _info(row)

    def put_model(
        self,
        name: str,
        flavor: str,
        blob: bytes,
        *,
        source: str,
        make_default: bool,
        metrics: dict[str, Any],
    ) -> ModelInfo:
        with self._txn() as conn:
            self._forget(conn, name)
            info = self._insert_model(conn, name, flavor, blob, source, metrics)
            if make_default:
                self._put_meta(conn, "default", name)
        return info

    def _forget(self, conn: DriverConnection, name: str) -> bool:
        rows = self._run(
            conn, "SELECT uid FROM {p}models WHERE name = ? FOR UPDATE", (name,)
        ).fetchall()
        for (uid,) in rows:
            self._run(conn, "DELETE FROM {p}log WHERE uid = ?", (uid,))
            self._run(conn, "DELETE FROM {p}snapshots WHERE uid = ?", (uid,))
            self._run(conn, "DELETE FROM {p}models WHERE name = ?", (name,))
        return bool(rows)

    def delete_model(self, name: str) -> bool:
        with self._txn() as conn:
            found = self._forget(conn, name)
            if found:
                self._run(conn, "DELETE FROM {p}meta WHERE k = 'default' AND v = ?", (name,))
        return found

    # -- serving ------------------------------------------------------------------------
    def lookup(self, name: str | None) -> tuple[ModelInfo, bool]:
        where = (
            "m.name = ?"
            if name is not None
            else "m.name = (SELECT v FROM {p}meta WHERE k = 'default')"
        )
        rows = self._read(
            "SELECT m.name, m.uid, m.flavor, m.version, m.snapshot_version,"
            " (SELECT v FROM {p}meta WHERE k = 'listeners') FROM {p}models m WHERE " + where,
            (name,) if name is not None else (),
        )
        if not rows:
            raise self._unknown(name)
        model, uid, flavor, version, snapshot_version, listeners = rows[0]
        info = ModelInfo(model, uid, flavor, int(version), int(snapshot_version))
        return info, listeners is not None and float(listeners) > now()

    def _unknown(self, name: str | None, conn: DriverConnection | None = None) -> UnknownModelError:
        query = "SELECT name FROM {p}models ORDER BY name"
        rows = self._run(conn, query).fetchall() if conn is not None else self._read(query)
        known = ", ".join(repr(row[0]) for row in rows) or "none"
        if name is None:
            return UnknownModelError(
                f"no default online model; name one with 'model' (known: {known}) or upload one"
            )
        return UnknownModelError(f"no online model named {name!r} (known: {known})")

    def catch_up(self, name: str, have_uid: str | None, have_version: int) -> CatchUp:
        with self._txn(write=False) as conn:
            rows = self._run(
                conn, "SELECT uid, version FROM {p}models WHERE name = ?", (name,)
            ).fetchall()
            if not rows:
                raise UnknownModelError(f"no online model named {name!r}")
            uid, version = rows[0]
            return self._catch_up(conn, uid, int(version), have_uid, have_version)

    def _catch_up(
        self,
        conn: DriverConnection,
        uid: str,
        version: int,
        have_uid: str | None,
        have_version: int,
    ) -> CatchUp:
        log = "SELECT version, features, y FROM {p}log WHERE uid = ? AND version > ? AND version <= ? ORDER BY version"
        if have_uid == uid and have_version <= version:
            entries = self._run(conn, log, (uid, have_version, version)).fetchall()
            if len(entries) == version - have_version:
                return CatchUp(uid, version, entries=[tuple(e) for e in entries])
        snap = self._run(
            conn, "SELECT version, data FROM {p}snapshots WHERE uid = ?", (uid,)
        ).fetchall()
        if not snap:
            raise StoreError(f"the online store has no snapshot of model {uid}")
        snap_version, data = int(snap[0][0]), bytes(snap[0][1])
        entries = self._run(conn, log, (uid, snap_version, version)).fetchall()
        if len(entries) != version - snap_version:
            raise StoreError(f"the online store lost log entries of model {uid}")
        return CatchUp(uid, version, data, snap_version, [tuple(e) for e in entries])

    def _write_stats(self, rows: list[tuple[Any, ...]]) -> None:
        with self._txn() as conn:
            for row in rows:
                self._run(
                    conn,
                    "INSERT INTO {p}stats (process, endpoint, n, total, ewm, at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (process, endpoint) DO UPDATE SET n = {p}stats.n + excluded.n,"
                    " total = {p}stats.total + excluded.total, ewm = excluded.ewm, at = excluded.at",
                    row,
                )

    # -- monitoring ---------------------------------------------------------------------
    def stats(self) -> list[dict[str, Any]]:
        self.flush_stats()
        rows = self._read("SELECT endpoint, n, total, ewm, at FROM {p}stats")
        keys = ("endpoint", "n", "total", "ewm", "at")
        return [dict(zip(keys, row, strict=True)) for row in rows]
