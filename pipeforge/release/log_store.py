"""Where a prediction log is kept: SQL tables or a folder of JSON lines files.

:class:`SQLLog` keeps two tables in any SQLAlchemy database (by default the
model store's own): ``pipeforge_prediction_log`` (one row per answered
request, its values as JSON text) and ``pipeforge_prediction_feedback``
(one row per request id: the primary key makes a second feedback fail in
the database itself, whichever process sends it). :class:`JsonLinesLog`
appends one JSON object a line to one file per process and day
(``predictions-YYYY-MM-DD-<pid>.jsonl``, so writers never interleave) and
keeps each feedback as a file created exclusively (``feedback/<digest>.json``):
the file system refuses the second one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..sql import create_tables, describe_url
from ..web import dumps
from .prediction_log import LoggedPrediction, unpacked_inputs

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

__all__ = ["SQLLog", "JsonLinesLog", "LOG_TABLE", "FEEDBACK_TABLE"]

LOG_TABLE = "pipeforge_prediction_log"
FEEDBACK_TABLE = "pipeforge_prediction_feedback"
_JSON_FIELDS = ("inputs", "outputs", "shadow_outputs")


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    import sqlalchemy as sa

    log = sa.Table(
        LOG_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(200), nullable=False, index=True),
        sa.Column("time", sa.Float, nullable=False, index=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("alias", sa.String(200)),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("single", sa.Boolean, nullable=False),
        sa.Column("latency", sa.Float, nullable=False),
        sa.Column("shadow_alias", sa.String(200)),
        sa.Column("shadow_version", sa.Integer),
        sa.Column("shadow_outputs", sa.Text),
    )
    feedback = sa.Table(
        FEEDBACK_TABLE,
        metadata,
        sa.Column("request_id", sa.String(200), primary_key=True),
        sa.Column("time", sa.Float, nullable=False, index=True),
        sa.Column("ground_truth", sa.Text, nullable=False),
    )
    return log, feedback


_COLUMNS = [f.name for f in dataclasses.fields(LoggedPrediction)][:-2]  # but the feedback's


def _row(entry: LoggedPrediction) -> dict[str, Any]:
    row = {name: getattr(entry, name) for name in _COLUMNS}  # not asdict: it deep-copies
    for name in _JSON_FIELDS:
        if row[name] is not None:
            row[name] = dumps(row[name])
    return row


def _entry(row: Any, truth: Any = None, at: Any = None) -> LoggedPrediction:
    values = {k: row[k] for k in row.keys() if k != "id"}  # noqa: SIM118 (a RowMapping)
    for name in _JSON_FIELDS:
        if values.get(name) is not None:
            values[name] = json.loads(values[name])
    values["inputs"] = unpacked_inputs(values["inputs"])
    values["single"] = bool(values["single"])
    if truth is not None:
        values["ground_truth"] = json.loads(truth)
        values["feedback_time"] = at
    return LoggedPrediction(**values)


class SQLLog:
    """A prediction log in SQL tables (created at first use).

    ``engine``: an engine, or a callable giving one (the model store's
    ``Database.engine``, which follows forks itself).
    """

    def __init__(self, engine: Engine | Callable[[], Engine]) -> None:
        self._engine_source = engine
        self._lock = threading.Lock()
        self._ready: Any = None  # the engine the tables were created on
        self._pid: int | None = None

    def engine(self) -> Engine:
        source = self._engine_source
        engine = source() if callable(source) else source
        with self._lock:
            if not callable(source) and self._pid not in (None, os.getpid()):
                engine.dispose(close=False)  # a forked child opens connections of its own
            self._pid = os.getpid()
            if self._ready is not engine:
                import sqlalchemy as sa

                self._metadata = sa.MetaData()
                self.log, self.feedback = _tables(self._metadata)
                create_tables(self._metadata, engine, what="the prediction log's tables")
                self._ready = engine
        return engine

    def describe(self) -> str:
        source = self._engine_source
        engine = source if not callable(source) else None
        return describe_url(engine.url) if engine is not None else "the model store's database"

    def __repr__(self) -> str:
        return f"SQLLog({self.describe()})"

    def write(self, entries: list[LoggedPrediction]) -> None:
        if not entries:
            return
        engine = self.engine()
        with engine.begin() as conn:
            conn.execute(self.log.insert(), [_row(e) for e in entries])

    def _select(self) -> sa.Select:
        import sqlalchemy as sa

        fb = self.feedback
        return sa.select(
            self.log, fb.c.ground_truth.label("_truth"), fb.c.time.label("_at")
        ).select_from(self.log.outerjoin(fb, fb.c.request_id == self.log.c.request_id))

    def entries(
        self,
        *,
        service: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_feedback: bool = False,
    ) -> Iterator[LoggedPrediction]:
        engine = self.engine()
        log = self.log
        query = self._select()
        if service is not None:
            query = query.where(log.c.service == service)
        if since is not None:
            query = query.where(log.c.time >= since)
        if until is not None:
            query = query.where(log.c.time < until)
        if with_feedback:
            query = query.where(self.feedback.c.request_id.is_not(None))
        order = log.c.id.desc() if newest_first else log.c.id
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        for row in rows:
            yield _entry(
                {k: v for k, v in row.items() if not k.startswith("_")}, row["_truth"], row["_at"]
            )

    def find(self, request_id: str) -> LoggedPrediction | None:
        engine = self.engine()
        query = self._select().where(self.log.c.request_id == request_id)
        with engine.connect() as conn:
            row = conn.execute(query.order_by(self.log.c.id.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        return _entry(
            {k: v for k, v in row.items() if not k.startswith("_")}, row["_truth"], row["_at"]
        )

    def add_feedback(self, request_id: str, ground_truth: list[Any], at: float) -> bool:
        import sqlalchemy as sa

        engine = self.engine()
        row = {"request_id": request_id, "time": at, "ground_truth": dumps(ground_truth)}
        try:
            with engine.begin() as conn:
                conn.execute(self.feedback.insert(), row)
        except sa.exc.IntegrityError:
            return False
        return True

    def prune(self, *, before: float | None, keep: int | None) -> int:
        import sqlalchemy as sa

        engine = self.engine()
        log, fb = self.log, self.feedback
        removed = 0
        with engine.begin() as conn:
            if before is not None:
                removed += conn.execute(sa.delete(log).where(log.c.time < before)).rowcount
            if keep is not None:
                query = sa.select(log.c.id).order_by(log.c.id.desc()).offset(keep).limit(1)
                last = conn.execute(query).scalar()
                if last is not None:
                    removed += conn.execute(sa.delete(log).where(log.c.id <= last)).rowcount
            if removed:
                kept = sa.select(log.c.request_id).where(log.c.request_id == fb.c.request_id)
                conn.execute(sa.delete(fb).where(~kept.exists()))
        return removed


class JsonLinesLog:
    """A prediction log in a folder of JSON lines files (one per process and day)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def describe(self) -> str:
        return str(self.folder)

    def __repr__(self) -> str:
        return f"JsonLinesLog({self.folder})"

    def write(self, entries: list[LoggedPrediction]) -> None:
        if not entries:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        day = dt.datetime.fromtimestamp(entries[0].time, dt.timezone.utc).date()  # noqa: UP017
        lines = "".join(dumps(_line(e)) + "\n" for e in entries)
        path = self.folder / f"predictions-{day.isoformat()}-{os.getpid()}.jsonl"
        with open(path, "a", encoding="utf-8") as file:
            file.write(lines)

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("predictions-*.jsonl"))

    def _feedback_path(self, request_id: str) -> Path:
        digest = hashlib.sha256(request_id.encode("utf-8")).hexdigest()
        return self.folder / "feedback" / f"{digest}.json"

    def _feedback(self, request_id: str) -> tuple[Any, float | None]:
        try:
            data = json.loads(self._feedback_path(request_id).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None, None  # none yet, or one being written right now
        return data["ground_truth"], data["time"]

    def entries(
        self,
        *,
        service: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_feedback: bool = False,
    ) -> Iterator[LoggedPrediction]:
        found = []
        for path in self._files():
            with open(path, encoding="utf-8") as file:
                for text in file:
                    if not text.endswith("\n"):
                        break  # a line being written
                    line = json.loads(text)
                    if service is not None and line["service"] != service:
                        continue
                    if since is not None and line["time"] < since:
                        continue
                    if until is not None and line["time"] >= until:
                        continue
                    found.append(line)
        found.sort(key=lambda line: line["time"], reverse=newest_first)
        given = 0
        for line in found:
            truth, at = self._feedback(line["request_id"])
            if with_feedback and at is None:
                continue
            line["inputs"] = unpacked_inputs(line["inputs"])
            yield LoggedPrediction(**line, ground_truth=truth, feedback_time=at)
            given += 1
            if limit is not None and given >= limit:
                return

    def find(self, request_id: str) -> LoggedPrediction | None:
        latest = None
        for entry in self.entries():
            if entry.request_id == request_id:
                latest = entry
        return latest

    def add_feedback(self, request_id: str, ground_truth: list[Any], at: float) -> bool:
        path = self._feedback_path(request_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = dumps({"request_id": request_id, "time": at, "ground_truth": ground_truth})
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(body, "utf-8")
        try:
            os.link(partial, path)  # atomic, and refused when the file exists
        except FileExistsError:
            return False
        finally:
            partial.unlink()
        return True

    def prune(self, *, before: float | None, keep: int | None) -> int:
        if before is None:
            return 0
        cutoff = dt.datetime.fromtimestamp(before, dt.timezone.utc).date()  # noqa: UP017
        removed = 0
        for path in self._files():
            day = dt.date.fromisoformat(path.name[len("predictions-") :][:10])
            if day < cutoff:  # a whole day older than the cutoff
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _line(entry: LoggedPrediction) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _COLUMNS}
