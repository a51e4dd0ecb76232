"""Live scores over time: how a version's live score moved as its feedback came in.

:func:`score_timeline` reads the newest logged predictions that have
feedback (at most ``limit``), puts them in the order they were answered and,
at ``points`` moments evenly spread between the first and the last, asks
:func:`.live_scores.live_scores` what the score was then: the score over the
newest ``window`` scored samples answered up to that moment. So the last
point of a series is the live score itself (when the read covers its
window), and a series is computed exactly as the headline figure is. The
dashboard draws these series (``GET /release``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any, cast

from .live_scores import DEFAULT_WINDOW, live_scores
from .prediction_log import LoggedPrediction, LogStore, iter_log

__all__ = ["score_timeline", "TIMELINE_POINTS", "TIMELINE_LIMIT"]

TIMELINE_POINTS = 24  #: moments per series, at most
TIMELINE_LIMIT = 5000  #: logged requests with feedback read, the newest


class _Read:
    """Entries read once, answered in time order, cut at ``until`` (a :class:`LogStore` to read)."""

    def __init__(self, entries: list[LoggedPrediction], until: int) -> None:
        self._entries = entries
        self._until = until

    def entries(
        self,
        *,
        service: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_feedback: bool = False,
    ) -> Iterator[LoggedPrediction]:
        chosen = self._entries[: self._until]
        order = reversed(chosen) if newest_first else iter(chosen)
        given = 0
        for entry in order:
            if limit is not None and given >= limit:
                return
            if service is not None and entry.service != service:
                continue
            if since is not None and entry.time < since:
                continue
            if until is not None and entry.time >= until:
                continue
            if with_feedback and entry.ground_truth is None:
                continue
            given += 1
            yield entry


def _key(score: Any, by: str) -> tuple:
    if by == "version":
        return (score.version,)
    if by == "alias":
        return (score.service, score.role, score.alias)
    return (score.service, score.role, score.alias, score.version)


def score_timeline(
    log: LogStore,
    *,
    service: str | None = None,
    scoring: Any = None,
    window: int = DEFAULT_WINDOW,
    by: str = "version",
    points: int = TIMELINE_POINTS,
    limit: int = TIMELINE_LIMIT,
) -> list[dict[str, Any]]:
    """One series per group (``by`` as in :func:`.live_scores.live_scores`), JSON-able.

    Each series: ``{"service", "role", "alias", "version", "metric",
    "higher_is_better", "points": [{"time", "score", "n"}, ...]}``, ``time``
    in seconds since the epoch; a point is kept only when the score or its
    sample count changed since the one before, and the last one always.
    """
    if points < 1:
        raise ValueError(f"points must be at least 1; got {points!r}")
    read = list(iter_log(log, service=service, newest_first=True, with_feedback=True, limit=limit))
    if not read:
        return []
    read.sort(key=lambda entry: entry.time)
    times = [entry.time for entry in read]
    first, last = times[0], times[-1]
    moments = [last] if points == 1 or last <= first else []
    if not moments:
        step = (last - first) / (points - 1)
        moments = [first + step * k for k in range(points - 1)] + [last]
    series: dict[tuple, dict[str, Any]] = {}
    for moment in moments:
        cut = bisect.bisect_right(times, moment)
        scored = live_scores(
            cast("LogStore", _Read(read, cut)), scoring=scoring, window=window, by=by
        )
        for found in scored:
            key = _key(found, by)
            line = series.setdefault(
                key,
                {
                    "service": found.service,
                    "role": found.role,
                    "alias": found.alias,
                    "version": found.version,
                    "metric": found.metric,
                    "higher_is_better": found.higher_is_better,
                    "points": [],
                },
            )
            point = {"time": moment, "score": found.score, "n": found.n}
            kept = line["points"]
            if kept and (kept[-1]["score"], kept[-1]["n"]) == (found.score, found.n):
                if moment == last:
                    kept[-1] = point
                continue
            kept.append(point)
    return sorted(
        series.values(),
        key=lambda s: (str(s["service"]), str(s["role"]), str(s["alias"]), s["version"] or 0),
    )
