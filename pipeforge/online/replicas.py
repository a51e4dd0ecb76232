"""Each process's copies of the online models, kept in step with the store.

Unpickling a model on every request would cost more than the request
itself, so a process keeps each model it serves in memory together with the
store's identity and version of it. Before a model answers, its copy is
compared with the stored version (one cheap read that the request makes
anyway); a copy that is behind replays the log entries it missed, and one
that is too far behind (or of a replaced model) starts again from the
stored snapshot. A learn in this process moves its copy forward itself.

Replaying gives the same model as learning did when the model's
``learn_one`` is deterministic given its state (River's are, random ones
included: their random state is part of the pickle).
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
from collections.abc import Callable

from .errors import StoreError
from .store import CatchUp, ModelInfo

__all__ = ["Replica", "Replicas"]

logger = logging.getLogger(__name__)


class Replica:
    """One model as this process holds it; use it only while holding ``lock``."""

    def __init__(self, name: str):
        self.name = name
        self.uid: str | None = None
        self.version = -1
        self.model = None
        self.flavor: str | None = None
        self.lock = threading.RLock()

    def invalidate(self) -> None:
        """Forget the copy (after a failed learn left it in an unknown state)."""
        self.uid, self.version, self.model, self.flavor = None, -1, None, None

    def current(self, info: ModelInfo) -> bool:
        return self.uid == info.uid and self.version >= info.version

    def apply(self, catch: CatchUp) -> None:
        """Bring the copy to ``catch.version``: snapshot (if any), then the log entries."""
        try:
            if catch.snapshot is not None:
                model = pickle.loads(catch.snapshot)
                version = catch.snapshot_version
            else:
                model, version = self.model, self.version
            for entry_version, features, y in catch.entries:
                model.learn_one(json.loads(features), json.loads(y))
                version = int(entry_version)
        except Exception as exc:
            self.invalidate()
            logger.exception("replaying stored model %r failed", self.name)
            raise StoreError(
                f"the stored model {self.name!r} cannot be loaded: {type(exc).__name__}"
            ) from exc
        self.uid, self.version, self.model = catch.uid, version, model


class Replicas:
    """The copies of one process, by model name."""

    def __init__(self) -> None:
        self._items: dict[str, Replica] = {}
        self._lock = threading.Lock()

    def slot(self, name: str) -> Replica:
        replica = self._items.get(name)
        if replica is None:
            with self._lock:
                replica = self._items.setdefault(name, Replica(name))
        return replica

    def sync(
        self, replica: Replica, info: ModelInfo, catch_up: Callable[[str | None, int], CatchUp]
    ) -> None:
        """Make ``replica`` (whose lock the caller holds) at least as new as ``info``."""
        if not replica.current(info):
            replica.apply(catch_up(replica.uid, replica.version))
        replica.flavor = info.flavor

    def get(self, name: str) -> Replica | None:
        """The copy of ``name`` if this process has one (``None`` else)."""
        return self._items.get(name)

    def drop(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
