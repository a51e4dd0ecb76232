"""Keeping ids and learning in the Redis online store: the hot path and its log entries.

* ``/api/predict`` with an ``id`` writes the id's features with their expiry
  in one script (with events: in one ``MULTI``);
* a learn takes the model's lock (``SET NX PX``, a token only its holder
  knows) together with the ``id``'s features, learns in the process, and
  commits in one script that checks the lock, the model's version and that
  the ``id`` is still there before it deletes the ``id``, appends the log
  entry, updates the metrics and releases the lock. A second learn of an
  ``id`` finds it gone; a process that lost its lock (it stalled past
  ``lock_ms``) changes nothing.

A log entry is one string: the ground truth, the learn's metrics delta and
the features (JSON texts, one line each), so that summing the deltas (for
the metrics) never parses the features.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from . import metrics
from .errors import StoreError, UnknownIdError, UnknownModelError
from .redis_access import RedisAccess, text
from .store import CatchUp, Event, Learning, ModelInfo, Pending

__all__ = ["RedisLearn", "MAX_EVENTS", "model_info", "split_entry", "fold_deltas"]

#: the events stream is trimmed to about this many events (``XADD … MAXLEN ~``)
MAX_EVENTS = 5000


def model_info(name: str, values: Sequence[Any], with_metrics: bool = True) -> ModelInfo | None:
    """The record of model ``name`` from its hash's fields (``None`` when it has none)."""
    if values is None or values[0] is None:
        return None
    uid, flavor, version, snapshot_version, n_learnt, source, created, state = values
    return ModelInfo(
        name=name,
        uid=text(uid),
        flavor=text(flavor),
        version=int(version),
        snapshot_version=int(snapshot_version),
        n_learnt=int(n_learnt),
        source=text(source),
        created=float(created),
        metrics=json.loads(state) if with_metrics else None,
    )


def _join_entry(features: str, y: str, delta: str | None) -> str:
    """A log entry: ground truth, metrics delta and features (JSON texts, one line each)."""
    return f"{y}\n{delta or 'null'}\n{features}"


def split_entry(entry: bytes) -> tuple[str, str]:
    """(features, ground truth) of a log entry."""
    y, _, rest = entry.partition(b"\n")
    _delta, _, features = rest.partition(b"\n")
    return features.decode(), y.decode()


def fold_deltas(base: bytes, entries: Iterable[bytes]) -> dict:
    """The metric counters of a snapshot (``base``, JSON) plus the deltas of the log ``entries``."""
    state = json.loads(base)
    for entry in entries:
        delta = entry.split(b"\n", 2)[1]
        if delta != b"null":
            state = metrics.merge(state, json.loads(delta))
    return state


class RedisLearn(RedisAccess):
    """The hot path of :class:`~pipeforge.online.redis_store.RedisStore`: keep ids, learn.

    Every ``/api/predict`` with an ``id`` and every ``/api/learn`` runs
    through here (see the module doc).
    """

    def _unknown(self, name: str | None) -> UnknownModelError:
        known = ", ".join(repr(info.name) for info in self.models()) or "none"
        if not name:
            return UnknownModelError(
                f"no default online model; name one with 'model' (known: {known}) or upload one"
            )
        return UnknownModelError(f"no online model named {name!r} (known: {known})")

    def after_predict(self, pending: tuple[str, Pending] | None, events: list[Event]) -> None:
        ttl = self.pending_ttl()
        ttl_ms = max(1, round(ttl * 1000)) if ttl else 0
        if not events:
            if pending is not None:
                key, record = pending
                # one script: the id's features and their expiry together, no MULTI
                self.run_script(
                    "keep", key, record.model, record.features, record.prediction, ttl_ms
                )
            return
        with self._redis_errors() as r:
            pipe = r.pipeline(transaction=True)
            if pending is not None:
                key, record = pending
                pipe.hset(
                    self.prefix + "pending:" + key,
                    mapping={
                        "model": record.model,
                        "features": record.features,
                        "prediction": record.prediction,
                    },
                )
                if ttl_ms:
                    pipe.pexpire(self.prefix + "pending:" + key, ttl_ms)
            for event in events:
                pipe.xadd(
                    self.prefix + "events",
                    {"kind": event.kind, "data": event.data},
                    maxlen=MAX_EVENTS,
                    approximate=True,
                )
            pipe.execute()

    @contextlib.contextmanager
    def learning(self, pending_id: str | None, name: str | None) -> Iterator[Learning]:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + max(30.0, self.lock_ms / 1000)
        while True:
            found = self.run_script("begin", pending_id or "", name or "", token, self.lock_ms)
            status = text(found[0])
            if status == "ok":
                break
            if status == "unknown-id":
                raise self.unknown_id(pending_id)
            if status == "unknown-model":
                missing = text(found[1]) or None
                if pending_id is not None:
                    raise UnknownModelError(
                        f"the model {missing!r} that predicted id {pending_id!r} was deleted"
                    )
                raise self._unknown(missing)
            if time.monotonic() > deadline:
                raise StoreError(
                    f"model {text(found[1])!r} stayed locked by another learn for too long"
                )
            time.sleep(random.uniform(0.0002, 0.002))
        model_name = text(found[1])
        # "ok": the begin script returned the model's fields
        info = cast(ModelInfo, model_info(model_name, found[3:11], False))
        pending = None
        if pending_id is not None:
            pending = Pending(model_name, text(found[11]), text(found[12]))
        learning = _RedisLearning(
            self, model_name, token, pending_id, pending, info, bool(found[2])
        )
        try:
            yield learning
        finally:
            if not learning.done:
                with contextlib.suppress(Exception):
                    self.run_script("release", token, keys=[self.prefix + "lock:" + model_name])


class _RedisLearning(Learning):
    def __init__(
        self,
        store: RedisLearn,
        name: str,
        token: str,
        pending_id: str | None,
        pending: Pending | None,
        model: ModelInfo,
        listening: bool,
    ):
        self.store = store
        self.name = name
        self.token = token
        self.pending_id = pending_id
        self.pending = pending
        self.model = model
        self.listening = listening
        self.done = False

    def catch_up(self, have_uid: str | None, have_version: int) -> CatchUp:
        return self.store.catch_up(self.name, have_uid, have_version)

    def metrics(self) -> dict:
        found = self.store.run_script("deltas", self.name)
        if not found or (len(found) == 1 and found[0] == b"lost-log"):
            raise StoreError(f"the online store lost part of the log of model {self.name!r}")
        return fold_deltas(found[0], found[1:])

    def commit(
        self,
        *,
        entries: list[tuple[str, str, str | None]],
        learnt: int,
        snapshot: bytes | None = None,
        metrics: dict | None = None,
        keep_log: int = 0,
        events: Sequence[Event] = (),
    ) -> int:
        args: list = [
            self.name,
            self.token,
            self.model.uid,
            self.model.version,
            self.pending_id or "",
            learnt,
            snapshot if snapshot is not None else "",
            json.dumps(metrics) if snapshot is not None else "",
            keep_log,
            len(entries),
        ]
        args.extend(_join_entry(*entry) for entry in entries)
        args.append(len(events))
        for event in events:
            args.extend([event.kind, event.data, MAX_EVENTS])
        result = text(self.store.run_script("commit", *args))
        self.done = True
        if result == "gone":
            raise UnknownIdError(
                "this id was learnt by another request at the same moment (or it just expired)"
            )
        if result != "ok":
            raise StoreError(f"the learn could not be stored ({result}); try again")
        return self.model.version + learnt
