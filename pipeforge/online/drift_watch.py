"""River's drift detectors on the error stream of each online model.

Each learn scores the model's prediction against the ground truth (see
:mod:`.metrics`); its error -- the absolute error for a regression, 0 for a
right and 1 for a wrong class otherwise -- goes into a River detector
(``ADWIN`` by default, or ``PageHinkley``). When the detector finds that the
error has changed and the recent error is higher than before (a model
that gets *better* is no news), the learn's events carry a ``drift`` event
on ``/api/stream/events``::

    event: drift
    data: {"model": "spam", "detector": "ADWIN", "seen": 1840,
           "error_before": 0.08, "error_now": 0.41}

Each process watches the learns it handles itself (the detector lives in
memory, next to the process's copy of the model): with one worker that is
the model's whole stream; with several, each sees its share of it, which
is a sample of the same errors, so a lasting change is found in each. A
detector starts afresh when the process starts or the model is replaced.

The ``online`` entry's ``drift_detector`` picks it: ``adwin`` (the default
when River is installed), ``page_hinkley``, or ``none``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from .store import Event

__all__ = ["DETECTORS", "ErrorDrift", "error_of", "check_detector", "default_detector"]

#: config names -> River classes (in ``river.drift``)
DETECTORS = {"adwin": "ADWIN", "page_hinkley": "PageHinkley"}


def check_detector(name: Any) -> str | None:
    """Why ``name`` cannot name a drift detector (``None`` when it can)."""
    if name == "none" or name in DETECTORS:
        if name in DETECTORS:
            try:
                import river.drift  # noqa: F401
            except ImportError:
                return f"{name!r} needs River: pip install 'pipeforge[online]'"
        return None
    return f"must be one of {', '.join([*DETECTORS, 'none'])}; got {name!r}"


def default_detector() -> str:
    """``adwin`` when River is installed, else ``none``."""
    try:
        import river.drift  # noqa: F401
    except ImportError:
        return "none"
    return "adwin"


def error_of(flavor: str, change: Mapping[str, Any] | None) -> float | None:
    """The error of one scored learn from its metrics delta (``None``: nothing was scored)."""
    if not change:
        return None
    if flavor == "regression":
        return float(change["abs"])
    if flavor == "binary":
        return 0.0 if change.get("tp") or change.get("tn") else 1.0
    return 0.0 if change.get("ok") else 1.0


class _Watch:
    def __init__(self, detector: Any, uid: str | None) -> None:
        self.detector = detector
        self.uid = uid
        self.seen = 0
        self.mean = 0.0  # the error's running mean since the last drift (or the start)
        self.recent = 0.0  # its exponentially weighted mean (for detectors without an estimate)


class ErrorDrift:
    """This process's detectors, one per online model."""

    def __init__(self, detector: str) -> None:
        self.detector = detector
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()

    def _new(self, uid: str | None) -> _Watch:
        import river.drift

        return _Watch(getattr(river.drift, DETECTORS[self.detector])(), uid)

    def observe(self, model: str, uid: str | None, flavor: str, change: Any) -> Event | None:
        """Feed one learn's error; the ``drift`` event when the error rose past a change."""
        if self.detector == "none":
            return None
        error = error_of(flavor, change)
        if error is None:
            return None
        with self._lock:
            watch = self._watches.get(model)
            if watch is None or watch.uid != uid:
                watch = self._watches[model] = self._new(uid)
            before = watch.mean
            watch.seen += 1
            watch.recent = error if watch.seen == 1 else watch.recent + 0.1 * (error - watch.recent)
            watch.detector.update(error)
            if not watch.detector.drift_detected:
                watch.mean += (error - watch.mean) / watch.seen
                return None
            now = float(getattr(watch.detector, "estimation", watch.recent))
            seen = watch.seen
            watch.mean, watch.seen = now, 1  # the error's level from here on
        if now <= before:
            return None
        data = {
            "model": model,
            "detector": DETECTORS[self.detector],
            "seen": seen,
            "error_before": round(before, 6),
            "error_now": round(now, 6),
        }
        return Event("drift", json.dumps(data))
