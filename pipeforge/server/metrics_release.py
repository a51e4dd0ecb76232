"""The prediction log's, the shadow's and the live scores' part of ``/metrics``.

====================================  =======  ==================================================
metric                                type     labels
====================================  =======  ==================================================
``pipeforge_live_score``              gauge    ``service``, ``role`` (``primary``/``shadow``),
                                               ``alias``, ``version``, ``metric``
``pipeforge_live_score_samples``      gauge    the same but ``metric``: scored samples
``pipeforge_release_events_total``    counter  ``service``, ``event``: ``logged``,
                                               ``log_dropped``, ``log_failed``, ``shadowed``,
                                               ``shadow_dropped``, ``shadow_failed``
====================================  =======  ==================================================

The live scores are read from the shared prediction log when scraped (a
reading is reused for :data:`SCORES_SECONDS`), so every worker answers the
same numbers; the events are counted by each worker and summed like the
other counters. An alias of ``""`` is the active version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["LiveScoreCollector", "attach_release_metrics", "SCORES_SECONDS"]

logger = logging.getLogger(__name__)

SCORES_SECONDS = 5.0  #: how long one reading of the live scores serves scrapes


class LiveScoreCollector:
    """The live-score gauges, computed from the logs of a ``ReleaseRecords`` when scraped."""

    def __init__(self, records: Any) -> None:
        self.records = records
        self._lock = threading.Lock()
        self._read: tuple[float, list[Any]] | None = None

    def _scores(self) -> list[Any]:
        with self._lock:
            if self._read is not None and time.monotonic() - self._read[0] < SCORES_SECONDS:
                return self._read[1]
            try:
                scores = self.records.scores()
            except Exception:  # the log's database is down: no gauges this time
                logger.warning("the live scores could not be read for /metrics", exc_info=True)
                scores = []
            self._read = (time.monotonic(), scores)
            return scores

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["service", "role", "alias", "version"]
        score = GaugeMetricFamily(
            "pipeforge_live_score",
            "Live score over the newest feedback window, by service, role, alias and version.",
            labels=[*labels, "metric"],
        )
        samples = GaugeMetricFamily(
            "pipeforge_live_score_samples",
            "Samples with feedback the live score was computed on.",
            labels=labels,
        )
        for found in self._scores():
            values = [
                str(found.service or ""),
                str(found.role or ""),
                str(found.alias or ""),
                "" if found.version is None else str(found.version),
            ]
            score.add_metric([*values, found.metric], found.score)
            samples.add_metric(values, found.n)
        yield score
        yield samples


def attach_release_metrics(metrics: Any, records: Any) -> None:
    """Count the sinks' events on ``metrics`` and add the live-score gauges when logs exist."""
    from prometheus_client import Counter

    events = Counter(
        "pipeforge_release_events",
        "Answers logged, shadowed, dropped (queue full) or failed, by predict service.",
        ["service", "event"],
        registry=metrics.registry,
    )
    entry_points = {key: getattr(s, "entry_point", key) for key, s in records.state.services}
    for key, sink in records.sinks.items():
        children: dict[str, Any] = {}

        def counted(event: str, n: int, service: str = entry_points[key], cache=children) -> None:
            child = cache.get(event)
            if child is None:
                child = cache[event] = events.labels(service, event)
            metrics.tally.add(child, n)

        sink.observe(counted)
    if records.logs:
        metrics.collectors.append(LiveScoreCollector(records))
