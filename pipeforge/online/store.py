"""The shared store of online learning: what every server process reads and writes.

Everything that must survive a process and be seen by the others lives in
an :class:`OnlineStore`: the flavor, the models, the features stored by
``/api/predict`` under an ``id``, the metrics, the call statistics and the
events the SSE streams deliver. Two implementations:
:class:`~pipeforge.online.sql_store.SQLStore` (the SQL model database:
SQLite by default, PostgreSQL) and
:class:`~pipeforge.online.redis_store.RedisStore`.

A model is stored as a *snapshot* (its pickle at some version) plus a
*log* of the samples learnt since (features and ground truth, one entry per
version). A learn appends one log entry under the model's lock and writes a
new snapshot only every so often, so learning costs a few small writes, not
a pickle of the model. Each process keeps its own copy of each model (see
:mod:`pipeforge.online.replicas`) and brings it up to date by replaying the
log entries it has not seen.

This module is the interface both implement; the records it takes and
returns are :mod:`pipeforge.online.records`, and each process's counting of
calls for ``GET /api/stats`` is :mod:`pipeforge.online.call_stats`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .call_stats import ProcessStats
from .errors import UnknownIdError
from .records import CatchUp, Event, ModelInfo, Pending, Seed, new_uid
from .records import now as now  # the stores' clock, imported from here by the SQL modules

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "OnlineStore",
    "Learning",
    "ModelInfo",
    "Pending",
    "CatchUp",
    "Seed",
    "Event",
    "new_uid",
]

logger = logging.getLogger(__name__)

LISTENER_TTL = 30.0  # seconds an SSE stream counts as listening after its last heartbeat


class Learning(abc.ABC):
    """An open learn: the model is locked (and the ``id``'s features taken) until it ends.

    ``model`` is the model's record before this learn (its ``metrics`` are
    not read: see :meth:`metrics`). Leaving the ``with`` block without
    :meth:`commit` (an error) leaves the store as it was: the ``id`` is
    still there, nothing was learnt.
    """

    pending: Pending | None
    model: ModelInfo
    listening: bool

    @abc.abstractmethod
    def catch_up(self, have_uid: str | None, have_version: int) -> CatchUp:
        """What the caller's copy misses of the locked model."""

    @abc.abstractmethod
    def metrics(self) -> dict:
        """The model's metric counters before this learn (its snapshot's plus the log's deltas)."""

    @abc.abstractmethod
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
        """Store the learn atomically; returns the model's new version.

        ``entries`` are appended to the log as ``(features, ground truth,
        metrics delta)`` JSON; ``learnt`` samples are added to the model's
        version and count (more than ``entries`` when a replay stores a
        snapshot only). A ``snapshot`` comes with the full ``metrics`` at
        the new version, and the log up to ``keep_log`` versions before it
        is dropped.
        """


class OnlineStore(abc.ABC):
    """Where online models and their state live, shared by every process (see the module doc)."""

    #: shown by ``GET /api/init`` as ``storage``
    kind = "abstract"

    def bind(self, config: Config) -> None:  # noqa: B027 - optional hook
        """Learn the config's folder and siblings before first use (no I/O here)."""

    def expire_pending(self, seconds: float | None) -> None:
        """Forget an ``id``'s features ``seconds`` after its predict (``None``: keep them)."""
        self.__dict__["_pending_ttl"] = seconds or None

    def pending_ttl(self) -> float | None:
        """How long an ``id`` waits for its learn, in seconds (``None``: until an init)."""
        return self.__dict__.get("_pending_ttl")

    def unknown_id(self, pending_id: str | None) -> UnknownIdError:
        """The 404 of a learn whose ``id`` has nothing stored."""
        ttl = self.pending_ttl()
        why = "it was never predicted with, or it was learnt already"
        if ttl:
            why = (
                "it was never predicted with, it was learnt already, or it expired "
                f"(an id waits {ttl:g} s for its learn: online.pending_ttl)"
            )
        return UnknownIdError(f"nothing is stored for id {pending_id!r}: {why}")

    def one_step_predict(self) -> bool:
        """Whether :meth:`keep_current` looks up and keeps in one round trip."""
        return False

    def keep_current(
        self, name: str | None, uid: str, version: int, pending: tuple[str, Pending]
    ) -> tuple[ModelInfo, bool, bool]:
        """Look ``name`` up and keep ``pending`` if the stored model is still ``(uid, version)``.

        For a caller that predicted with its copy before asking the store:
        ``(record, listening, kept)``; when not ``kept`` (the copy is behind,
        or the default model changed), nothing was stored and the caller
        catches up and keeps the id itself. Only where
        :meth:`one_step_predict` says so.
        """
        raise NotImplementedError

    def _process_stats(self) -> ProcessStats:
        stats = self.__dict__.get("_proc_stats")
        if stats is None:
            stats = self.__dict__.setdefault("_proc_stats", ProcessStats(self._write_stats))
        return stats

    def record_stat(self, endpoint: str, duration_ns: int) -> None:
        """Count one answered call of ``endpoint`` (written within ``STATS_SECONDS``).

        See :mod:`pipeforge.online.call_stats`.
        """
        self._process_stats().record(endpoint, duration_ns)

    def _discard_stats(self) -> None:
        stats = self.__dict__.get("_proc_stats")
        if stats is not None:
            stats.discard()

    def flush_stats(self) -> None:
        """Write this process's counts now (before reading them back)."""
        stats = self.__dict__.get("_proc_stats")
        if stats is not None:
            stats.flush()

    @abc.abstractmethod
    def _write_stats(self, rows: list[tuple]) -> None:
        """Add ``(process, endpoint, n, total ns, ewm ns, at)`` rows to the stored counts."""

    # -- setup and flavor --------------------------------------------------------------
    @abc.abstractmethod
    def ready(self, seeds: list[Seed], flavor: str | None) -> None:
        """Create what is missing and put the config's models in, once per name."""

    @abc.abstractmethod
    def flavor(self) -> str | None:
        """The flavor set by ``init`` (or the config), ``None`` before."""

    @abc.abstractmethod
    def reset(self, flavor: str, seeds: list[Seed]) -> None:
        """Erase everything, set ``flavor`` and put the config's models back in."""

    # -- models ------------------------------------------------------------------------
    @abc.abstractmethod
    def models(self) -> list[ModelInfo]:
        """Every stored model with its metrics, oldest first."""

    @abc.abstractmethod
    def default(self) -> str | None:
        """The name of the default model."""

    def model(self, name: str) -> ModelInfo | None:
        """One model with its metrics, or ``None``."""
        for info in self.models():
            if info.name == name:
                return info
        return None

    @abc.abstractmethod
    def put_model(
        self, name: str, flavor: str, blob: bytes, *, source: str, make_default: bool, metrics: dict
    ) -> ModelInfo:
        """Store (or replace) a model at version 0 with the fresh ``metrics`` state."""

    @abc.abstractmethod
    def delete_model(self, name: str) -> bool:
        """Drop a model with its log; ``False`` when there was none."""

    # -- serving -----------------------------------------------------------------------
    @abc.abstractmethod
    def lookup(self, name: str | None) -> tuple[ModelInfo, bool]:
        """The record of ``name`` (the default model for ``None``) and whether SSE listeners exist.

        Raises :class:`~pipeforge.online.errors.UnknownModelError`.
        """

    @abc.abstractmethod
    def catch_up(self, name: str, have_uid: str | None, have_version: int) -> CatchUp:
        """What a copy at ``(have_uid, have_version)`` misses of the stored model (consistent read)."""

    @abc.abstractmethod
    def after_predict(self, pending: tuple[str, Pending] | None, events: list[Event]) -> None:
        """Keep an ``id``'s features and announce the prediction, atomically."""

    @abc.abstractmethod
    def learning(
        self, pending_id: str | None, name: str | None
    ) -> contextlib.AbstractContextManager[Learning]:
        """Lock the model (the ``id``'s model wins over ``name``) to learn.

        Raises :class:`~pipeforge.online.errors.UnknownIdError` for an ``id``
        with nothing stored and ``UnknownModelError`` for a missing model.
        """

    # -- monitoring ----------------------------------------------------------------------
    @abc.abstractmethod
    def stats(self) -> list[dict]:
        """Rows of ``endpoint``, ``n``, ``total`` (ns), ``ewm`` (ns), ``at`` (epoch s), one per process."""

    @abc.abstractmethod
    def last_event_id(self) -> str:
        """The cursor of the newest event (events after it are new)."""

    @abc.abstractmethod
    def events(self, cursor: str, timeout: float) -> tuple[str, list[tuple[str, Event]]]:
        """Events after ``cursor`` (waiting up to ``timeout`` s for some): (new cursor, [(id, event)])."""

    @abc.abstractmethod
    def listen(self) -> None:
        """Say an SSE stream is listening (for :data:`LISTENER_TTL` seconds)."""

    def close(self) -> None:
        """Write the pending call counts and release connections (tests, shutdown)."""
        stats = self.__dict__.get("_proc_stats")
        if stats is not None:
            stats.stop()
