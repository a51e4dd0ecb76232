"""What every part of the online service shares: its settings, store and copies, and the flavor.

:class:`ServiceSetup` holds the service's state (the settings, the shared
store, this process's copies of the models) and puts the config's models
into the store once per process, at the first request rather than at
import, so a server that forks its workers seeds the store from each of
them safely. ``GET``/``POST /api/init`` (reading and erasing the store with
a new flavor) live here too: they are about the store as a whole, not one
model. The requests themselves are :class:`~pipeforge.online.service.OnlineService`.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

from ..errors import RequestError
from . import flavors as fl
from . import metrics as mt
from .config import OnlineSettings
from .drift_watch import ErrorDrift
from .replicas import Replica, Replicas
from .safety import FeatureBook
from .store import CatchUp, ModelInfo, OnlineStore, Seed

__all__ = ["ServiceSetup"]

logger = logging.getLogger(__name__)


class ServiceSetup:
    """The state of one app's (or one ``pf-online`` run's) online service, and its setup."""

    def __init__(self, settings: OnlineSettings) -> None:
        self.settings = settings
        self.store: OnlineStore = settings.store
        self.replicas = Replicas()
        self._default_name: str | None = None  # the default model's name, as last seen
        self._ready_pid: int | None = None
        self._ready_lock = threading.Lock()
        self._books: dict[str, FeatureBook] = {}  # the feature names of each copy
        self.error_drift = ErrorDrift(getattr(settings, "drift_detector", "none"))
        self._streams = 0  # SSE responses open in this process
        self._streams_lock = threading.Lock()

    def book(self, name: str) -> FeatureBook:
        """The feature names this process's copy of model ``name`` knows (use under its lock)."""
        book = self._books.get(name)
        if book is None:
            limit = self.settings.limits.max_model_features
            book = self._books.setdefault(name, FeatureBook(limit))
        return book

    def catch_up_copy(
        self, replica: Replica, info: ModelInfo, catch_up: Callable[[str | None, int], CatchUp]
    ) -> None:
        """Bring ``replica`` (locked) up to ``info``, telling its feature book what it learnt."""
        before = replica.model
        caught: list[CatchUp] = []

        def fetch(uid: str | None, version: int) -> CatchUp:
            caught.append(catch_up(uid, version))
            return caught[-1]

        self.replicas.sync(replica, info, fetch)
        if caught:
            self.book(info.name).caught_up(before, caught[-1])

    def open_stream(self) -> bool:
        """Count one more SSE response in this process, unless ``max_streams`` are open."""
        with self._streams_lock:
            if self._streams >= self.settings.max_streams:
                return False
            self._streams += 1
            return True

    def close_stream(self) -> None:
        """An SSE response counted by :meth:`open_stream` has ended."""
        with self._streams_lock:
            self._streams = max(0, self._streams - 1)

    def seeds(self) -> list[Seed]:
        """The config's models, as the store takes them in (pickled, metrics fresh)."""
        return [
            Seed(
                spec.name,
                spec.flavor,
                pickle.dumps(spec.model, protocol=5),
                spec.default,
                mt.new_state(spec.flavor),
            )
            for spec in self.settings.models
        ]

    def ensure_ready(self) -> None:
        """Put the config's models into the store, once per process (first request, not import)."""
        if self._ready_pid == os.getpid():
            return
        with self._ready_lock:
            if self._ready_pid != os.getpid():
                self.store.ready(self.seeds(), self.settings.flavor)
                self._ready_pid = os.getpid()

    def get_init(self) -> dict:
        """``GET /api/init``: the flavor, the kind of store and the libraries' versions."""
        self.ensure_ready()
        flavor = self.store.flavor()
        if flavor is None:
            raise RequestError(
                'no flavor has been set; POST /api/init with {"flavor": ...} '
                "(or declare online_models in the config)"
            )
        return {"flavor": flavor, "storage": self.store.kind, **_versions()}

    def init(self, body: Any) -> dict:
        """``POST /api/init``: erase the store, set the body's flavor, put the config's models back."""
        if not isinstance(body, dict) or "flavor" not in body:
            raise RequestError("the body needs 'flavor': one of " + ", ".join(fl.FLAVORS))
        try:
            flavor = fl.check_flavor(body["flavor"])
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        self.store.reset(flavor, self.seeds())
        self.replicas.clear()
        self._ready_pid = os.getpid()
        logger.info("online store erased; flavor is now %r", flavor)
        return {"flavor": flavor, "storage": self.store.kind, **_versions()}


def _versions() -> dict:
    versions = {}
    for module in ("river", "sklearn"):
        try:
            versions[f"{module}_version"] = __import__(module).__version__
        except ImportError:
            versions[f"{module}_version"] = None
    return versions
