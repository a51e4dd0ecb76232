"""An in-process cache of the active model, refreshed on a schedule.

Unpickling a model for every request would be far too slow, so a server
keeps the active model in its process store (key ``model``) and swaps in
a newer one when ``pf-fit`` or ``pf-admin activate`` elsewhere changed the
store. The refresh runs in an :class:`~pipeforge.scheduling.RruleThread`
started by the server (never while the config is parsed), on demand
(``/update-model-cache``), and lazily while no model has been cached yet,
so a server started before the first model recovers by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import NoModelError, UnmigratedStoreError
from ..interfaces import Background, ModelPersister, annotate
from ..process_store import ProcessStore
from .storage import as_version

if TYPE_CHECKING:
    from ..scheduling import RruleThread

__all__ = ["CachedUpdatePersister"]

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0


class CachedUpdatePersister(ModelPersister, Background):
    """Wrap ``impl`` (any :class:`ModelPersister`) with a cached, periodically refreshed model.

    ``update_cache_rrule`` is a dict of ``dateutil.rrule`` arguments (e.g.
    ``{'freq': 'HOURLY'}``) or an ``rrule``; without it the cache changes
    only on :meth:`refresh`, :meth:`activate` and :meth:`write`. With
    ``check_version`` a refresh reads the model only when the active
    version differs from the cached one.
    """

    def __init__(
        self, impl: ModelPersister, update_cache_rrule: Any = None, check_version: bool = True
    ):
        self.impl = impl
        self.update_cache_rrule = update_cache_rrule
        self.check_version = check_version
        self._process_store: ProcessStore | None = None
        self._lock = threading.RLock()  # serialises refreshes; never taken to serve a read
        self._store_lock = threading.Lock()
        self._thread: RruleThread | None = None
        self._last_attempt = float("-inf")
        self._unmigrated: UnmigratedStoreError | None = None  # said again by read()
        self._observers: list = []

    def observe(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(outcome)`` after each refresh: ``"loaded"``, ``"unchanged"`` or ``"failed"``.

        For instrumentation (the web service's ``/metrics``); a callback must
        be quick and must not raise.
        """
        self._observers.append(callback)

    def _tell(self, outcome: str) -> None:
        for callback in self._observers:
            try:
                callback(outcome)
            except Exception:
                logger.exception("a model cache observer failed")

    def __repr__(self) -> str:
        return f"CachedUpdatePersister(impl={self.impl!r})"

    def initialize_component(self, config: Any) -> None:
        """Share the config's process store, so ``/alive`` sees the cached model."""
        store = getattr(config, "process_store", None)
        if store is not None:
            self._process_store = store

    @property
    def cache(self) -> ProcessStore:
        """The process store holding the cached model under ``'model'``."""
        store = self._process_store
        if store is None:
            with self._store_lock:
                if self._process_store is None:
                    self._process_store = ProcessStore()
                store = self._process_store
        return store

    # -- the cache ---------------------------------------------------------
    @staticmethod
    def _version_of(model) -> str | None:
        metadata = getattr(model, "__metadata__", None) or {}
        version = metadata.get("version")
        return None if version is None else str(version)

    def refresh(self) -> bool:
        """Load the active model into the cache if it changed; return whether it did.

        Raises :class:`NoModelError` when the store has no active model
        (the cached model, if any, stays in place).
        """
        try:
            changed = self._refresh()
        except Exception:
            self._tell("failed")
            raise
        self._tell("loaded" if changed else "unchanged")
        return changed

    def _refresh(self) -> bool:
        with self._lock:
            self._last_attempt = time.monotonic()
            store = self.cache
            cached = store.get("model")
            if self.check_version and cached is not None:
                active = self.impl.list_properties().get("active-model")
                if active is not None and active == self._version_of(cached):
                    return False
            model = self.impl.read()
            if self.check_version and cached is not None:
                if self._version_of(model) == self._version_of(cached) is not None:
                    return False
            store["model"] = model
            logger.info("model cache now holds version %s", self._version_of(model))
            return True

    def update_cache(self) -> bool:
        """Palladium's name for :meth:`refresh`."""
        return self.refresh()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except UnmigratedStoreError as exc:
            self._unmigrated = exc
            logger.warning("model cache not filled: %s", exc)
        except NoModelError as exc:
            self._unmigrated = None
            logger.info("model cache not filled: %s", exc)
        else:
            self._unmigrated = None

    # -- Background --------------------------------------------------------
    def start(self) -> None:
        """Fill the cache and, with an rrule, start refreshing it in the background."""
        from ..scheduling import RruleThread, make_rrule

        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            rule = None
            if self.update_cache_rrule is not None:
                rule = make_rrule(
                    self.update_cache_rrule,
                    owner="CachedUpdatePersister",
                    parameter="update_cache_rrule",
                )
            self._refresh_quietly()
            if rule is not None:
                self._thread = RruleThread(
                    self._refresh_quietly, rule, name="pipeforge-model-cache"
                )
                self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(timeout)

    @property
    def started(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- ModelPersister ----------------------------------------------------
    def read(self, version: int | None = None) -> Any:
        """The cached model (or ``impl.read(version)`` for an explicit version)."""
        if version is not None:
            return self.impl.read(version)
        model = self.cache.get("model")
        if model is not None:
            return model
        with self._lock:
            model = self.cache.get("model")
            if model is None and time.monotonic() - self._last_attempt >= _RETRY_SECONDS:
                self._refresh_quietly()
                model = self.cache.get("model")
        if model is None:
            if self._unmigrated is not None:
                raise UnmigratedStoreError(str(self._unmigrated))
            raise NoModelError(
                "no model loaded yet; fit one with pf-fit or activate one with pf-admin activate"
            )
        return model

    def write(self, model: Any) -> int:
        version = self.impl.write(model)
        if self.started:
            self._refresh_quietly()
        return version

    def activate(self, version: int) -> None:
        self.impl.activate(version)
        if self.started or "model" in self.cache:
            self._refresh_quietly()
        else:
            self._last_attempt = float("-inf")  # let the next read() load it at once

    def delete(self, version: int) -> None:
        self.impl.delete(version)
        with self._lock:
            cached = self.cache.get("model")
            number = as_version(version)
            if cached is not None and self._version_of(cached) == str(number):
                del self.cache["model"]
                self._last_attempt = float("-inf")

    def list_models(self) -> list[dict]:
        return self.impl.list_models()

    def list_properties(self) -> dict[str, str]:
        return self.impl.list_properties()

    def upgrade(self, from_version: str | None = None, to_version: str | None = None) -> list[str]:
        return self.impl.upgrade(from_version, to_version)

    def update_metadata(self, version: int, changes: dict) -> dict:
        """Update the store, and the cached model's metadata when it is that version."""
        metadata = self.impl.update_metadata(version, changes)
        cached = self.cache.get("model")
        if cached is not None and self._version_of(cached) == str(as_version(version)):
            annotate(cached, dict(metadata))
        return metadata
