"""Stoppable background threads driven by a ``dateutil`` recurrence rule.

The model cache and scheduled dataset loaders refresh on a calendar
("every hour", "every 2 seconds"). :class:`RruleThread` waits on a
:class:`threading.Event` until the rule's next occurrence, so stopping it
is immediate and no CPU is burnt between runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from dateutil.rrule import rrulebase

__all__ = ["RruleThread", "make_rrule"]

logger = logging.getLogger(__name__)


def make_rrule(
    spec: rrulebase | Mapping[str, Any], *, owner: str = "RruleThread", parameter: str = "rrule"
) -> rrulebase:
    """Turn ``spec`` (an ``rrule`` or a dict of ``rrule`` keyword arguments) into an ``rrule``.

    ``freq`` may be given by name (``'HOURLY'``), as config files do. The
    rule starts now (to the second) unless ``dtstart`` is given.
    """
    from dateutil import rrule as rr

    if isinstance(spec, rr.rrulebase):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"parameter {parameter!r} of {owner} must be a dateutil rrule or a dict of "
            f"rrule arguments such as {{'freq': 'HOURLY'}}; got {spec!r} instead"
        )
    kwargs = dict(spec)
    freq = kwargs.pop("freq", None)
    if isinstance(freq, str):
        name = freq.upper()
        if name not in rr.FREQNAMES:
            raise ConfigError(
                f"parameter {parameter!r} of {owner} must have a 'freq' among "
                f"{', '.join(rr.FREQNAMES)}; got {freq!r} instead"
            )
        freq = getattr(rr, name)
    elif not isinstance(freq, int) or isinstance(freq, bool):
        raise ConfigError(
            f"parameter {parameter!r} of {owner} must have a 'freq' such as 'HOURLY'; "
            f"got {freq!r} instead"
        )
    kwargs.setdefault("dtstart", datetime.now().replace(microsecond=0))
    try:
        return rr.rrule(freq, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"parameter {parameter!r} of {owner} must be valid rrule arguments; "
            f"got {spec!r} instead ({exc})"
        ) from exc


class RruleThread(threading.Thread):
    """Call ``func()`` at every occurrence of ``rrule`` until stopped.

    An exception raised by ``func`` is logged with its traceback and the
    schedule goes on: one failed refresh must not end all later ones.
    """

    def __init__(
        self,
        func: Callable[[], Any],
        rrule: rrulebase | Mapping[str, Any],
        *,
        name: str | None = None,
    ):
        super().__init__(name=name or f"RruleThread({getattr(func, '__name__', func)!s})")
        self.daemon = True
        self.func = func
        self.rrule = make_rrule(rrule)
        self._stop_event = threading.Event()

    def next_run(self, now: datetime | None = None) -> datetime | None:
        """The rule's first occurrence after ``now``, or ``None`` when it has run out."""
        return self.rrule.after(self._now(now))

    def _now(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now()
        if self.rrule._dtstart is not None and self.rrule._dtstart.tzinfo is not None:
            now = now.astimezone(self.rrule._dtstart.tzinfo)
        return now

    def run(self) -> None:
        # One iterator over the occurrences: rrule.after() walks from dtstart on
        # every call, which for a SECONDLY rule grows with the uptime (44 ms
        # per call after an hour, most of a core after a day).
        occurrences = self.rrule.xafter(self._now())
        while not self._stop_event.is_set():
            upcoming = next(occurrences, None)
            now = self._now()
            while upcoming is not None and upcoming <= now:  # missed while func ran
                upcoming = next(occurrences, None)
            if upcoming is None:
                logger.info("%s: schedule has no more occurrences; stopping", self.name)
                return
            delay = max((upcoming - now).total_seconds(), 0.0)
            if self._stop_event.wait(delay):
                return
            try:
                self.func()
            except Exception:
                logger.exception("%s: scheduled call failed; will retry at the next run", self.name)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait (up to ``timeout`` seconds) for it."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()
