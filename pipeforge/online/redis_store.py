"""The online store in Redis, for high traffic (``pip install pipeforge[redis]``).

Every key starts with ``prefix`` (``pipeforge:{online}:``; the braces keep
all keys in one Redis Cluster slot, so the Lua scripts below may touch
several). Each step that must be atomic is one Lua script, which Redis runs
alone:

* ``/api/predict`` reads the model's identity and version in one script and
  writes the ``id``'s features with their expiry in another (with an event:
  in one ``MULTI``);
* a learn takes the model's lock (``SET NX PX``, a token only its holder
  knows) together with the ``id``'s features, learns in the process, and
  commits in one script that checks the lock, the model's version and that
  the ``id`` is still there before it deletes the ``id``, appends the log
  entry, updates the metrics and releases the lock. A second learn of an
  ``id`` finds it gone; a process that lost its lock (it stalled past
  ``lock_ms``) changes nothing.

Events go to a Redis stream (``XADD … MAXLEN ~``) that every SSE response
reads with ``XREAD BLOCK``. Durability is Redis's: with ``appendonly yes``
and ``appendfsync everysec`` at most a second of learns is lost on a crash.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import uuid

from ..errors import ConfigError
from . import metrics
from .errors import StoreError, UnknownIdError, UnknownModelError
from .redis_scripts import SCRIPTS
from .store import (
    LISTENER_TTL,
    CatchUp,
    Event,
    Learning,
    ModelInfo,
    OnlineStore,
    Pending,
    Seed,
    new_uid,
    now,
)

__all__ = ["RedisStore"]

_MAX_EVENTS = 5000
_FIELDS = (
    "uid",
    "flavor",
    "version",
    "snapshot_version",
    "n_learnt",
    "source",
    "created",
    "metrics",
)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _join_entry(features: str, y: str, delta: str | None) -> str:
    """A log entry: ground truth, metrics delta and features (JSON texts, one line each)."""
    return f"{y}\n{delta or 'null'}\n{features}"


def _split_entry(entry: bytes) -> tuple[str, str]:
    """(features, ground truth) of a log entry."""
    y, _, rest = entry.partition(b"\n")
    _delta, _, features = rest.partition(b"\n")
    return features.decode(), y.decode()


def _fold(base: bytes, entries) -> dict:
    state = json.loads(base)
    for entry in entries:
        delta = entry.split(b"\n", 2)[1]
        if delta != b"null":
            state = metrics.merge(state, json.loads(delta))
    return state


class RedisStore(OnlineStore):
    """Online models and their state in Redis (see the module doc).

    ``url`` is a ``redis://`` URL; ``lock_ms`` is how long a learn may hold
    a model's lock before another process may take it over.
    """

    kind = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "pipeforge:{online}:",
        lock_ms: int = 10_000,
    ):
        self.url = url
        self.prefix = prefix
        self.lock_ms = lock_ms

    def __repr__(self) -> str:
        return f"RedisStore(url={self.url!r}, prefix={self.prefix!r})"

    def _client(self):
        client = self.__dict__.get("_redis")
        if client is not None:
            return client
        if not isinstance(self.url, str) or not re.match(r"rediss?://|unix://", self.url):
            raise ConfigError(
                f"parameter 'url' of RedisStore must be a redis:// URL; got {self.url!r} instead"
            )
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ConfigError(
                f"parameter 'prefix' of RedisStore must be a non-empty string; got {self.prefix!r} instead"
            )
        if (
            isinstance(self.lock_ms, bool)
            or not isinstance(self.lock_ms, int)
            or self.lock_ms < 100
        ):
            raise ConfigError(
                f"parameter 'lock_ms' of RedisStore must be an int >= 100; got {self.lock_ms!r} instead"
            )
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "RedisStore needs the redis package: pip install 'pipeforge[redis]'"
            ) from exc
        client = redis.Redis.from_url(self.url)
        self.__dict__["_scripts"] = {
            name: client.register_script(source) for name, source in SCRIPTS.items()
        }
        self.__dict__["_redis"] = client
        return client

    def _call(self, script: str, *args, keys=()):
        self._client()
        try:
            return self.__dict__["_scripts"][script](
                keys=list(keys), args=[self.prefix, *args] if not keys else list(args)
            )
        except Exception as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: Exception) -> Exception:
        if isinstance(exc, StoreError | ConfigError):
            return exc
        return StoreError(f"the online store (Redis) failed: {type(exc).__name__}: {exc}")

    @contextlib.contextmanager
    def _redis_errors(self):
        try:
            yield self._client()
        except (StoreError, ConfigError, UnknownModelError, UnknownIdError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                raise self._failed(exc) from exc
            raise

    # -- flavor, seeding, reset ------------------------------------------------------------
    def flavor(self) -> str | None:
        with self._redis_errors() as r:
            value = r.hget(self.prefix + "meta", "flavor")
        return None if value is None else _text(value)

    def ready(self, seeds: list[Seed], flavor: str | None) -> None:
        with self._redis_errors() as r:
            if flavor is not None:
                r.hsetnx(self.prefix + "meta", "flavor", flavor)
        self._seed(seeds)

    def _seed(self, seeds: list[Seed]) -> None:
        for seed in seeds:
            self._call(
                "seed",
                seed.name,
                new_uid(),
                seed.flavor,
                seed.blob,
                repr(now()),
                json.dumps(seed.metrics),
                "1" if seed.default else "0",
            )

    def reset(self, flavor: str, seeds: list[Seed]) -> None:
        self._discard_stats()
        with self._redis_errors() as r:
            keys = list(r.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000))
            for start in range(0, len(keys), 500):
                r.delete(*keys[start : start + 500])
            r.hset(self.prefix + "meta", "flavor", flavor)
        self._seed(seeds)

    # -- models ---------------------------------------------------------------------------
    def _info(self, name: str, values, with_metrics: bool = True) -> ModelInfo | None:
        if values is None or values[0] is None:
            return None
        uid, flavor, version, snapshot_version, n_learnt, source, created, metrics = values
        return ModelInfo(
            name=name,
            uid=_text(uid),
            flavor=_text(flavor),
            version=int(version),
            snapshot_version=int(snapshot_version),
            n_learnt=int(n_learnt),
            source=_text(source),
            created=float(created),
            metrics=json.loads(metrics) if with_metrics else None,
        )

    def models(self) -> list[ModelInfo]:
        with self._redis_errors() as r:
            names = [_text(n) for n in r.zrange(self.prefix + "names", 0, -1)]
        infos = [self.model(name) for name in names]
        return [info for info in infos if info is not None]

    def model(self, name: str) -> ModelInfo | None:
        with self._redis_errors() as r:
            info = self._info(name, r.hmget(self.prefix + "model:" + name, *_FIELDS), False)
        if info is None:
            return None
        found = self._call("deltas", name)
        if not found:
            return None  # deleted meanwhile
        if len(found) == 1 and found[0] == b"lost-log":
            raise StoreError(f"the online store lost part of the log of model {name!r}")
        info.metrics = _fold(found[0], found[1:])
        return info

    def default(self) -> str | None:
        with self._redis_errors() as r:
            value = r.hget(self.prefix + "meta", "default")
        return None if value is None else _text(value)

    def put_model(self, name, flavor, blob, *, source, make_default, metrics) -> ModelInfo:
        uid, created = new_uid(), now()
        self._call(
            "put",
            name,
            uid,
            flavor,
            blob,
            source,
            repr(created),
            json.dumps(metrics),
            "1" if make_default else "0",
        )
        return ModelInfo(name, uid, flavor, 0, 0, 0, source, created, metrics)

    def delete_model(self, name: str) -> bool:
        return bool(self._call("delete", name))

    # -- serving ------------------------------------------------------------------------------
    def _unknown(self, name: str | None) -> UnknownModelError:
        known = ", ".join(repr(info.name) for info in self.models()) or "none"
        if not name:
            return UnknownModelError(
                f"no default online model; name one with 'model' (known: {known}) or upload one"
            )
        return UnknownModelError(f"no online model named {name!r} (known: {known})")

    def lookup(self, name: str | None) -> tuple[ModelInfo, bool]:
        found = self._call("lookup", name or "")
        if not found:
            raise self._unknown(name)
        model, uid, flavor, version, snapshot_version, listening = found
        info = ModelInfo(
            _text(model), _text(uid), _text(flavor), int(version), int(snapshot_version)
        )
        return info, bool(listening)

    def catch_up(self, name: str, have_uid: str | None, have_version: int) -> CatchUp:
        found = self._call("catch_up", name, have_uid or "", have_version)
        if not found:
            raise UnknownModelError(f"no online model named {name!r}")
        if len(found) == 1:
            raise StoreError(f"the online store lost part of model {name!r} ({_text(found[0])})")
        uid, version, snapshot, snapshot_version = found[:4]
        first = (int(snapshot_version) if snapshot else have_version) + 1
        entries = [(first + i, *_split_entry(e)) for i, e in enumerate(found[4:])]
        return CatchUp(_text(uid), int(version), snapshot or None, int(snapshot_version), entries)

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

    def after_predict(self, pending, events) -> None:
        if pending is None and not events:
            return
        ttl = self.pending_ttl()
        ttl_ms = max(1, round(ttl * 1000)) if ttl else 0
        if not events:
            key, record = pending
            # one script: the id's features and their expiry together, no MULTI
            self._call("keep", key, record.model, record.features, record.prediction, ttl_ms)
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
                    maxlen=_MAX_EVENTS,
                    approximate=True,
                )
            pipe.execute()

    @contextlib.contextmanager
    def learning(self, pending_id: str | None, name: str | None):
        token = uuid.uuid4().hex
        deadline = time.monotonic() + max(30.0, self.lock_ms / 1000)
        while True:
            found = self._call("begin", pending_id or "", name or "", token, self.lock_ms)
            status = _text(found[0])
            if status == "ok":
                break
            if status == "unknown-id":
                raise self.unknown_id(pending_id)
            if status == "unknown-model":
                missing = _text(found[1]) or None
                if pending_id is not None:
                    raise UnknownModelError(
                        f"the model {missing!r} that predicted id {pending_id!r} was deleted"
                    )
                raise self._unknown(missing)
            if time.monotonic() > deadline:
                raise StoreError(
                    f"model {_text(found[1])!r} stayed locked by another learn for too long"
                )
            time.sleep(random.uniform(0.0002, 0.002))
        model_name = _text(found[1])
        info = self._info(model_name, found[3:11], False)
        pending = None
        if pending_id is not None:
            pending = Pending(model_name, _text(found[11]), _text(found[12]))
        learning = _RedisLearning(
            self, model_name, token, pending_id, pending, info, bool(found[2])
        )
        try:
            yield learning
        finally:
            if not learning.done:
                with contextlib.suppress(Exception):
                    self._call("release", token, keys=[self.prefix + "lock:" + model_name])

    # -- monitoring -----------------------------------------------------------------------------
    def stats(self) -> list[dict]:
        self.flush_stats()
        with self._redis_errors() as r:
            raw = r.hgetall(self.prefix + "stats")
        rows: dict[tuple[str, str], dict] = {}
        for field, value in raw.items():
            process, endpoint, what = _text(field).rsplit("|", 2)
            rows.setdefault(
                (process, endpoint),
                {"endpoint": endpoint, "n": 0, "total": 0.0, "ewm": 0.0, "at": 0.0},
            )[what] = float(value)
        return list(rows.values())

    def last_event_id(self) -> str:
        with self._redis_errors() as r:
            newest = r.xrevrange(self.prefix + "events", count=1)
        return _text(newest[0][0]) if newest else "0-0"

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
                cursor = _text(event_id)
                out.append((cursor, Event(_text(fields[b"kind"]), _text(fields[b"data"]))))
        return cursor, out

    def close(self) -> None:
        super().close()
        client = self.__dict__.pop("_redis", None)
        if client is not None:
            client.close()


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class _RedisLearning(Learning):
    def __init__(
        self,
        store: RedisStore,
        name: str,
        token: str,
        pending_id,
        pending,
        model: ModelInfo,
        listening,
    ):
        self.store = store
        self.name = name
        self.token = token
        self.pending_id = pending_id
        self.pending = pending
        self.model = model
        self.listening = listening
        self.done = False

    def catch_up(self, have_uid, have_version) -> CatchUp:
        return self.store.catch_up(self.name, have_uid, have_version)

    def metrics(self) -> dict:
        found = self.store._call("deltas", self.name)
        if not found or (len(found) == 1 and found[0] == b"lost-log"):
            raise StoreError(f"the online store lost part of the log of model {self.name!r}")
        return _fold(found[0], found[1:])

    def commit(self, *, entries, learnt, snapshot=None, metrics=None, keep_log=0, events=()) -> int:
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
            args.extend([event.kind, event.data, _MAX_EVENTS])
        result = _text(self.store._call("commit", *args))
        self.done = True
        if result == "gone":
            raise UnknownIdError(
                "this id was learnt by another request at the same moment (or it just expired)"
            )
        if result != "ok":
            raise StoreError(f"the learn could not be stored ({result}); try again")
        return self.model.version + learnt
