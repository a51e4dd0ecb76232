"""An in-process cache of the active model, refreshed on a schedule.

Unpickling a model for every request would be far too slow, so a server
keeps the active model in its process store (key ``model``) and swaps in
a newer one when ``pf-fit`` or ``pf-admin activate`` elsewhere changed the
store. The refresh runs in an :class:`~pipeforge.scheduling.RruleThread`
started by the server (never while the config is parsed), on demand
(``/update-model-cache``), and lazily while no model has been cached yet,
so a server started before the first model recovers by itself.

Faults degrade, they never stop the server. A store that cannot be read
(a database down, its file unreadable or gone) neither fails :meth:`start`
nor the refresh thread: the cache keeps the last good model, logs the
outage once (and once more when it is over), and while it has no model at
all, :meth:`CachedUpdatePersister.read` raises
:class:`~pipeforge.errors.StoreUnavailableError` (503), whose message says
what is unavailable but not the driver's words. A store that answers but
has no active model any more (its version was deleted) empties the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigError,
    NoModelError,
    StoreUnavailableError,
    UnknownVersionError,
    UnmigratedStoreError,
)
from ..interfaces import Background, ModelPersister, annotate
from ..process_store import ProcessStore
from ..release.aliases import ACTIVE, alias_version
from .alias_cache import AliasModels
from .storage import as_version

if TYPE_CHECKING:
    from ..scheduling import RruleThread

__all__ = ["CachedUpdatePersister"]

logger = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0  # how often a read() without a cached model tries the store itself


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
        self._no_model: NoModelError | None = None  # what the store said last time, if so
        self._outage_since: float | None = None  # when the store stopped answering
        self._said: str | None = None  # the last state logged, so each is logged once
        self._observers: list = []
        self._aliases = AliasModels()  # the models of the other aliases servers serve

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

        Raises :class:`NoModelError` when the store has no active model (or
        its active version is gone): the cache is emptied then, since the
        model it holds is no longer the store's. Any other error (the store
        cannot be read) is raised and the cached model stays in place.
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
            if not self._aliases.active:
                return self._refresh_active(None)
            properties = self.impl.list_properties()  # one read: every alias and split
            changed = self._aliases.load(properties, self.impl, self.cache.get("model"))
            return self._refresh_active(properties) or changed

    def _refresh_active(self, properties: dict[str, str] | None) -> bool:
        with self._lock:
            store = self.cache
            cached = store.get("model")
            try:
                if self.check_version and cached is not None:
                    if properties is None:
                        properties = self.impl.list_properties()
                    active = properties.get("active-model")
                    if active is not None and active == self._version_of(cached):
                        return False
                model = self.impl.read()
            except UnmigratedStoreError:
                raise
            except (NoModelError, UnknownVersionError) as exc:
                if cached is not None and store.get("model") is cached:
                    del store["model"]
                    logger.warning(
                        "model version %s is no longer the store's active model (%s); "
                        "the cache is empty until one is activated",
                        self._version_of(cached),
                        exc,
                    )
                if isinstance(exc, NoModelError):
                    raise
                raise NoModelError(str(exc)) from exc
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
        """Refresh, logging what went wrong once per state instead of raising.

        A :class:`~pipeforge.errors.ConfigError` (the store's parameters are
        wrong) is raised: that is no outage to wait out.
        """
        with self._lock:  # the thread and a read() without a model may both get here
            try:
                self.refresh()
            except UnmigratedStoreError as exc:
                self._unmigrated, self._no_model = exc, None
                self._store_answered(f"model cache not filled: {exc}", logging.WARNING)
            except NoModelError as exc:
                self._unmigrated, self._no_model = None, exc
                self._store_answered(f"model cache not filled: {exc}", logging.INFO)
            except ConfigError:
                raise
            except Exception as exc:
                self._store_failed(exc)
            else:
                self._unmigrated = self._no_model = None
                self._store_answered(None, logging.INFO)

    def _store_answered(self, state: str | None, level: int) -> None:
        if self._outage_since is not None:
            seconds = time.monotonic() - self._outage_since
            self._outage_since = None
            logger.warning(
                "the model store %r can be read again (after %.1f s)", self.impl, seconds
            )
        if state is not None and state != self._said:
            logger.log(level, "%s", state)
        self._said = state

    def _store_failed(self, exc: Exception) -> None:
        cached = self._version_of(self.cache.get("model"))
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            keeping = (
                f"keeping model version {cached}"
                if cached is not None
                else "answering 503 until it can be read"
            )
            logger.warning(
                "the model store %r cannot be read (%s: %s); %s, and retrying",
                self.impl,
                type(exc).__name__,
                exc,
                keeping,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
        else:
            logger.debug("the model store still cannot be read: %s: %s", type(exc).__name__, exc)
        self._said = None

    @staticmethod
    def _unavailable_message() -> str:
        """What a client is told while the store cannot be read (no driver text, no URL)."""
        return (
            f"the model store cannot be read right now; retrying every {_RETRY_SECONDS:g} s "
            "(the server log says why)"
        )

    # -- aliases (docs/releasing.md) ----------------------------------------
    def serve_aliases(
        self, names: Iterable[str] = (), *, every: bool = False, traffic: bool = False
    ) -> None:
        """Keep the models of the aliases ``names`` too, refreshed with the active one.

        ``every``: of every alias the store has; ``traffic``: of every alias
        a stored traffic split names. Called by the server while it is built.
        """
        self._aliases.want(names, every=every, traffic=traffic)

    def read_alias(self, name: str) -> Any:
        """The cached model of alias ``name`` (``active``: :meth:`read`).

        Raises :class:`~pipeforge.errors.UnknownAliasError` when no version
        carries it; while nothing is cached yet, the store is tried as
        :meth:`read` does.
        """
        if name == ACTIVE:
            return self.read()
        model = self._aliases.models.get(name)
        if model is not None:
            return model
        known = self._aliases
        if not known.loaded or alias_version(known.properties, name) is not None:
            known.want([name])  # asked for by a caller: kept from now on
        if self._lock.acquire(blocking=self._outage_since is None):
            try:
                model = self._aliases.models.get(name)
                if model is None and time.monotonic() - self._last_attempt >= _RETRY_SECONDS:
                    self._refresh_quietly()
                    model = self._aliases.models.get(name)
            finally:
                self._lock.release()
        if model is not None:
            return model
        if self._outage_since is not None:
            raise StoreUnavailableError(self._unavailable_message())
        raise self._aliases.missing(name)

    def cached_models(self) -> list[Any]:
        """The models held now: the active one first, then the aliases' (no store read)."""
        active = self.cache.get("model")
        return [*([active] if active is not None else []), *self._aliases.models.values()]

    def cached_properties(self) -> dict[str, str] | None:
        """The store's properties as the last refresh read them (``None``: not read yet).

        The routing of a canary takes its stored traffic split from here, so
        a request reads nothing from the store.
        """
        return self._aliases.properties if self._aliases.loaded else None

    def set_property(self, name: str, value: str | None, *, version: int | None = None) -> None:
        """Set a store property (an alias, a traffic split) and refresh the cache."""
        self.impl.set_property(name, value, version=version)  # type: ignore[attr-defined]
        if self.started or "model" in self.cache or self._aliases.loaded:
            self._refresh_quietly()
        else:
            self._last_attempt = float("-inf")

    # -- Background --------------------------------------------------------
    def start(self) -> None:
        """Fill the cache and, with an rrule, start refreshing it in the background.

        A store that cannot be read does not stop the start: the thread
        keeps trying (and :meth:`read` too while the cache is empty).
        """
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
        """The cached model (or ``impl.read(version)`` for an explicit version).

        Without a cached model, the store is tried at most once every
        second, by one request at a time: during an outage the others are
        answered at once (:class:`~pipeforge.errors.StoreUnavailableError`)
        instead of queueing behind a connection attempt.
        """
        if version is not None:
            return self.impl.read(version)
        model = self.cache.get("model")
        if model is not None:
            return model
        if self._lock.acquire(blocking=self._outage_since is None):
            try:
                model = self.cache.get("model")
                if model is None and time.monotonic() - self._last_attempt >= _RETRY_SECONDS:
                    self._refresh_quietly()
                    model = self.cache.get("model")
            finally:
                self._lock.release()
        if model is not None:
            return model
        if self._outage_since is not None:
            raise StoreUnavailableError(self._unavailable_message())
        if self._unmigrated is not None:
            raise UnmigratedStoreError(str(self._unmigrated))
        if self._no_model is not None:
            raise NoModelError(str(self._no_model))
        raise NoModelError(
            "no model loaded yet; fit one with pf-fit or activate one with pf-admin activate"
        )

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
            if number is not None:
                self._aliases.drop_version(number)

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
