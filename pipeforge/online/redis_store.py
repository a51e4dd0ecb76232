"""The online store in Redis, for high traffic (``pip install pipeforge[redis]``).

Every key starts with ``prefix`` (``pipeforge:{online}:``; the braces keep
all keys in one Redis Cluster slot, so the Lua scripts of
:mod:`pipeforge.online.redis_scripts` may touch several). Each step that
must be atomic is one Lua script, which Redis runs alone. The store is
four modules, one per concern:

* :mod:`pipeforge.online.redis_access`: the client, the scripts, errors;
* :mod:`pipeforge.online.redis_learn`: keeping an ``id``'s features and
  learning under the model's lock (the hot path), and the log entries;
* :mod:`pipeforge.online.redis_events`: the SSE events and call statistics;
* this module: the flavor, seeding and erasing, the models and their
  records, and what a process's copy needs to catch up.

Durability is Redis's: with ``appendonly yes`` and ``appendfsync everysec``
at most a second of learns is lost on a crash.
"""

from __future__ import annotations

import json
import re

from ..sql import redact_url
from .errors import StoreError, UnknownModelError
from .redis_access import text
from .redis_events import RedisEvents
from .redis_learn import RedisLearn, fold_deltas, model_info, split_entry
from .store import CatchUp, ModelInfo, Seed, new_uid, now

__all__ = ["RedisStore"]

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


class RedisStore(RedisLearn, RedisEvents):
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
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.lock_ms = lock_ms

    def __repr__(self) -> str:
        url = redact_url(self.url) if isinstance(self.url, str) else self.url
        return f"RedisStore(url={url!r}, prefix={self.prefix!r})"

    # -- flavor, seeding, reset ------------------------------------------------------------
    def flavor(self) -> str | None:
        with self._redis_errors() as r:
            value = r.hget(self.prefix + "meta", "flavor")
        return None if value is None else text(value)

    def ready(self, seeds: list[Seed], flavor: str | None) -> None:
        with self._redis_errors() as r:
            if flavor is not None:
                r.hsetnx(self.prefix + "meta", "flavor", flavor)
        self._seed(seeds)

    def _seed(self, seeds: list[Seed]) -> None:
        for seed in seeds:
            self.run_script(
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
    def models(self) -> list[ModelInfo]:
        with self._redis_errors() as r:
            names = [text(n) for n in r.zrange(self.prefix + "names", 0, -1)]
        infos = [self.model(name) for name in names]
        return [info for info in infos if info is not None]

    def model(self, name: str) -> ModelInfo | None:
        with self._redis_errors() as r:
            info = model_info(name, r.hmget(self.prefix + "model:" + name, *_FIELDS), False)
        if info is None:
            return None
        found = self.run_script("deltas", name)
        if not found:
            return None  # deleted meanwhile
        if len(found) == 1 and found[0] == b"lost-log":
            raise StoreError(f"the online store lost part of the log of model {name!r}")
        info.metrics = fold_deltas(found[0], found[1:])
        return info

    def default(self) -> str | None:
        with self._redis_errors() as r:
            value = r.hget(self.prefix + "meta", "default")
        return None if value is None else text(value)

    def put_model(
        self, name: str, flavor: str, blob: bytes, *, source: str, make_default: bool, metrics: dict
    ) -> ModelInfo:
        uid, created = new_uid(), now()
        self.run_script(
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
        return bool(self.run_script("delete", name))

    # -- serving ------------------------------------------------------------------------------
    def lookup(self, name: str | None) -> tuple[ModelInfo, bool]:
        found = self.run_script("lookup", name or "")
        if not found:
            raise self._unknown(name)
        model, uid, flavor, version, snapshot_version, listening = found
        info = ModelInfo(text(model), text(uid), text(flavor), int(version), int(snapshot_version))
        return info, bool(listening)

    def catch_up(self, name: str, have_uid: str | None, have_version: int) -> CatchUp:
        found = self.run_script("catch_up", name, have_uid or "", have_version)
        if not found:
            raise UnknownModelError(f"no online model named {name!r}")
        if len(found) == 1:
            raise StoreError(f"the online store lost part of model {name!r} ({text(found[0])})")
        uid, version, snapshot, snapshot_version = found[:4]
        first = (int(snapshot_version) if snapshot else have_version) + 1
        entries = [(first + i, *split_entry(e)) for i, e in enumerate(found[4:])]
        return CatchUp(text(uid), int(version), snapshot or None, int(snapshot_version), entries)


def _glob_escape(pattern: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", pattern)
