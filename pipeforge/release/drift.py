"""Drift: how far what a service is asked now has moved from what its model was trained on.

For each version found in the recent prediction log, each input feature is
compared with the version's training summary (:mod:`pipeforge.release.summary`):

* the **population stability index** (PSI) over the training bins:
  ``sum((live - train) * ln(live / train))`` over the bins, where ``train``
  are the shares of the training rows in each bin (deciles of a numeric
  feature; the kept values plus "other" for a categorical one) and ``live``
  the shares of the logged inputs in the same bins (a share of 0 counts as
  :data:`EPSILON`). 0 means the same distribution; by the usual rule of thumb
  below 0.1 is no real change, 0.1-0.25 a moderate and above 0.25 a major
  shift. The default threshold is 0.2.
* the **share of inputs outside the training range**: numeric values below
  the training minimum or above its maximum, categories never seen in
  training (when the summary kept all of them).

Why PSI and not a two-sample test (Kolmogorov-Smirnov, chi-squared): PSI
needs only the ten bin shares kept in the summary, not the training data; it
is a size of change, not a p-value, so it does not call a negligible shift
significant just because the window is large, nor miss a big one in a small
window; and it works the same for numbers and categories, so one threshold
fits every feature.

A feature is flagged when its PSI exceeds ``threshold`` or its share outside
the training range exceeds ``max_outside``; a version with fewer than
``min_rows`` logged samples, or without a training summary (fitted before
pipeforge stored them), gets no verdict and says why.

The ``drift`` config entry (all optional)::

    drift:
      threshold: 0.2        # PSI above which a feature has drifted
      max_outside: 0.05     # share of inputs outside the training range that counts as drift
      window: 1000          # the most recent logged requests of each service compared
      min_rows: 200         # fewer logged samples of a version: no verdict
      every: 30             # seconds a computed report is reused by /alive and /metrics
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from .summary import category, summary_of

__all__ = [
    "EPSILON",
    "DriftSettings",
    "FeatureDrift",
    "VersionDrift",
    "read_settings",
    "psi",
    "feature_drift",
    "version_drift",
    "drift_report",
    "DriftMonitor",
    "recent_rows",
    "monitor_for",
    "brief",
]

logger = logging.getLogger(__name__)

#: the share an empty bin counts as (keeps the logarithm finite)
EPSILON = 1e-4
_KEYS = {"threshold": 0.2, "max_outside": 0.05, "window": 1000, "min_rows": 200, "every": 30.0}


@dataclasses.dataclass(frozen=True)
class DriftSettings:
    """The ``drift`` config entry with its defaults."""

    threshold: float = 0.2
    max_outside: float = 0.05
    window: int = 1000
    min_rows: int = 200
    every: float = 30.0


def read_settings(config: Mapping[str, Any]) -> DriftSettings | None:
    """The ``drift`` entry of ``config``; ``None`` when it is absent (drift is not watched)."""
    entry = config.get("drift")
    if entry is None:
        return None
    source = ", ".join(getattr(config, "sources", []) or []) or None
    if entry is True or entry == {}:
        return DriftSettings()
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"must be a mapping of {', '.join(_KEYS)}; got {entry!r}", source=source, key="drift"
        )
    for key in entry:
        if key not in _KEYS:
            raise ConfigError(
                f"unknown key; expected one of {', '.join(_KEYS)}",
                source=source,
                key=f"drift.{key}",
            )
    values: dict[str, Any] = {}
    for key, default in _KEYS.items():
        value = entry.get(key, default)
        whole = isinstance(default, int)
        ok = (
            not isinstance(value, bool)
            and isinstance(value, int if whole else int | float)
            and math.isfinite(value)
            and (value >= 1 if whole else value >= 0)
            and (key != "max_outside" or value <= 1)
        )
        if not ok:
            wanted = "a positive integer" if whole else "a number >= 0"
            if key == "max_outside":
                wanted = "a share between 0 and 1"
            raise ConfigError(
                f"must be {wanted}; got {value!r} instead", source=source, key=f"drift.{key}"
            )
        values[key] = value if whole else float(value)
    return DriftSettings(**values)


def psi(train: Iterable[float], live: Iterable[float]) -> float:
    """The population stability index of bin shares ``live`` against ``train``."""
    total = 0.0
    for expected, actual in zip(train, live, strict=True):
        expected, actual = max(expected, EPSILON), max(actual, EPSILON)
        total += (actual - expected) * math.log(actual / expected)
    return total


@dataclasses.dataclass
class FeatureDrift:
    """One feature of one version: its PSI and share outside the training range."""

    name: str
    kind: str  #: ``numeric`` or ``categorical``
    rows: int  #: logged values compared (missing ones left out)
    missing: int  #: logged values that were missing (or not numbers for a numeric feature)
    psi: float | None  #: ``None`` when no value was compared
    outside: float | None  #: share of the values outside the training range
    drifted: bool


def _as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool | str):
        try:
            return float(value) if isinstance(value, str) else None
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def feature_drift(
    entry: Mapping[str, Any], values: list[Any], settings: DriftSettings
) -> FeatureDrift:
    """Compare the logged ``values`` of one feature with its summary ``entry``."""
    import bisect

    name, kind = str(entry.get("name")), str(entry.get("kind"))
    if kind == "numeric":
        numbers = [n for n in (_as_number(v) for v in values) if n is not None]
        edges = list(entry.get("edges") or [])
        train = list(entry.get("shares") or [1.0])
        counts = [0] * (len(edges) + 1)
        low, high = entry.get("min"), entry.get("max")
        outside = 0
        for number in numbers:
            counts[bisect.bisect_left(edges, number)] += 1
            if low is not None and high is not None and not low <= number <= high:
                outside += 1
        compared = len(numbers)
    else:
        kept = dict(entry.get("shares") or {})
        present = [category(v) for v in values if v is not None]
        other = 1.0 - sum(kept.values())
        train = [*kept.values(), max(other, 0.0)]
        counts = [0] * (len(kept) + 1)
        index = {value: i for i, value in enumerate(kept)}
        for value in present:
            counts[index.get(value, len(kept))] += 1
        outside = counts[-1] if entry.get("complete", False) else 0
        compared = len(present)
    if not compared:
        return FeatureDrift(name, kind, 0, len(values), None, None, False)
    live = [c / compared for c in counts]
    score = psi(train, live)
    share = outside / compared
    drifted = score > settings.threshold or share > settings.max_outside
    return FeatureDrift(
        name, kind, compared, len(values) - compared, round(score, 6), round(share, 6), drifted
    )


@dataclasses.dataclass
class VersionDrift:
    """The drift of one version over the logged samples it answered."""

    service: str
    version: int | None
    rows: int  #: logged samples (a POST of 3 samples counts 3)
    features: list[FeatureDrift]
    drifted: bool
    score: float | None  #: the largest PSI of its features
    outside: float | None  #: the largest share outside the training range
    note: str | None = None  #: why there is no verdict

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _samples(inputs: Any) -> list[Mapping[str, Any]]:
    """The samples of one logged request's inputs (a JSON text, an object or a list of them)."""
    if isinstance(inputs, str | bytes):
        try:
            inputs = json.loads(inputs)
        except ValueError:
            return []
    if isinstance(inputs, Mapping):
        return [inputs]
    if isinstance(inputs, list):
        return [s for s in inputs if isinstance(s, Mapping)]
    return []


def version_drift(
    service: str,
    version: int | None,
    summary: Mapping[str, Any] | None,
    samples: list[Mapping[str, Any]],
    settings: DriftSettings,
) -> VersionDrift:
    """The drift of ``samples`` (``{name: value}`` dicts) against a training ``summary``."""
    if summary is None:
        note = "no training summary (fitted before pipeforge stored them)"
        return VersionDrift(service, version, len(samples), [], False, None, None, note)
    if len(samples) < settings.min_rows:
        note = f"{len(samples)} logged samples; drift needs at least {settings.min_rows}"
        return VersionDrift(service, version, len(samples), [], False, None, None, note)
    by_position = summary.get("by") == "position"
    names = list(samples[0]) if samples else []
    features = []
    for i, entry in enumerate(summary.get("features") or []):
        if by_position:  # unnamed training columns: the service's field names, in order
            values = [list(s.values())[i] if i < len(s) else None for s in samples]
            entry = {**entry, "name": names[i] if i < len(names) else entry.get("name")}
        else:
            values = [s.get(str(entry.get("name"))) for s in samples]
        features.append(feature_drift(entry, values, settings))
    scores = [f.psi for f in features if f.psi is not None]
    shares = [f.outside for f in features if f.outside is not None]
    return VersionDrift(
        service,
        version,
        len(samples),
        features,
        any(f.drifted for f in features),
        max(scores) if scores else None,
        max(shares) if shares else None,
    )


def drift_report(
    rows: Iterable[Mapping[str, Any]],
    metadata: Callable[[int], Mapping[str, Any] | None],
    settings: DriftSettings,
) -> dict[str, Any]:
    """Drift of every (service, version) in the log ``rows``, as JSON-able data.

    ``rows`` are prediction-log rows (``service``, ``version``, ``inputs``);
    ``metadata(version)`` gives a version's stored metadata (``None`` for a
    version no longer stored). The answer::

        {"drifted": bool, "threshold": 0.2, "max_outside": 0.05,
         "versions": [VersionDrift.as_dict(), ...]}
    """
    groups: dict[tuple[str, int | None], list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("version") is None:
            continue
        key = (str(row.get("service") or ""), int(row["version"]))
        groups.setdefault(key, []).extend(_samples(row.get("inputs")))
    versions = []
    for (service, version), samples in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)
    ):
        summary = summary_of(metadata(version)) if version is not None else None
        versions.append(version_drift(service, version, summary, samples, settings))
    return {
        "drifted": any(v.drifted for v in versions),
        "threshold": settings.threshold,
        "max_outside": settings.max_outside,
        "versions": [v.as_dict() for v in versions],
    }


class DriftMonitor:
    """A drift report computed at most every ``settings.every`` seconds (shared by threads).

    ``read_rows()`` gives the recent prediction-log rows; ``list_models()``
    the store's version metadata (a persister's ``list_models``). A failing
    read is logged and reported as ``{"error": ...}`` rather than raised:
    the health check and the metrics must answer anyway.
    """

    def __init__(
        self,
        settings: DriftSettings,
        read_rows: Callable[[], Iterable[Mapping[str, Any]]],
        list_models: Callable[[], list[dict]],
    ) -> None:
        self.settings = settings
        self.read_rows = read_rows
        self.list_models = list_models
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._at = -math.inf

    def compute(self) -> dict[str, Any]:
        """A fresh report (reads the log and the store's metadata)."""
        rows = list(self.read_rows())
        models = {m.get("version"): m for m in self.list_models()}
        return drift_report(rows, models.get, self.settings)

    def report(self) -> dict[str, Any]:
        """The latest report, recomputed when older than ``every`` seconds."""
        with self._lock:
            now = time.monotonic()
            if self._report is None or now - self._at >= self.settings.every:
                try:
                    self._report = self.compute()
                except Exception as exc:  # noqa: BLE001 (reported, never raised)
                    logger.warning("drift could not be computed: %s: %s", type(exc).__name__, exc)
                    self._report = {
                        "drifted": False,
                        "threshold": self.settings.threshold,
                        "max_outside": self.settings.max_outside,
                        "versions": [],
                        "error": "drift could not be computed; see the server log",
                    }
                self._at = now
            return self._report


def brief(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report in short, for ``/alive``: per version its verdict and its drifted features."""
    versions = []
    for version in report.get("versions") or []:
        drifted = {
            f["name"]: {"psi": f["psi"], "outside": f["outside"]}
            for f in version.get("features") or []
            if f.get("drifted")
        }
        short = {
            k: version.get(k) for k in ("service", "version", "rows", "drifted", "score", "outside")
        }
        if version.get("note"):
            short["note"] = version["note"]
        versions.append({**short, "drifted_features": drifted})
    answer = {k: report.get(k) for k in ("drifted", "threshold", "max_outside")}
    if report.get("error"):
        answer["error"] = report["error"]
    return {**answer, "versions": versions}


def recent_rows(
    config: Mapping[str, Any], window: int, persister: Any = None
) -> list[dict[str, Any]]:
    """The newest ``window`` logged requests of each predict service that keeps a log.

    Each row: ``{"service", "version", "inputs"}`` (read with
    :func:`pipeforge.release.prediction_log.read_log`).
    """
    from .prediction_log import logs_in, read_log

    rows = []
    for key, log in logs_in(config, persister).items():
        service = getattr(config[key], "entry_point", None) or key
        for entry in read_log(log, service=service, limit=window, newest_first=True):
            rows.append(
                {"service": entry.service, "version": entry.version, "inputs": entry.inputs}
            )
    return rows


def monitor_for(config: Mapping[str, Any], persister: Any = None) -> DriftMonitor | None:
    """The drift monitor of ``config`` (``None`` without a ``drift`` entry)."""
    settings = read_settings(config)
    if settings is None:
        return None
    if persister is None:
        persister = config.get("model_persister")
    if persister is None:
        raise ConfigError(
            "drift needs a model_persister (its versions' training summaries)", key="drift"
        )
    return DriftMonitor(
        settings,
        lambda: recent_rows(config, settings.window, persister),
        persister.list_models,
    )
