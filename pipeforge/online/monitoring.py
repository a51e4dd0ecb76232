"""What the online API tells about itself: a model's metrics, the call statistics, metric events.

``GET /api/metrics`` reads a model's progressive-validation metrics from the
store; ``GET /api/stats`` turns each process's stored call counts into
chantilly's answer (mean and exponentially weighted durations, also as
text like ``3ms408μs682ns``); and after a learn the service announces the
model's new metrics on the SSE stream with :func:`metrics_event`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

from ..errors import RequestError
from . import metrics as mt
from .errors import UnknownModelError
from .service_setup import ServiceSetup
from .store import Event, ModelInfo

__all__ = ["Monitoring", "humanize_ns", "metrics_event"]


def humanize_ns(ns: int) -> str:
    """A duration in ns as chantilly writes it: ``3ms408μs682ns``."""
    if ns <= 0:
        return "0ns"
    parts = []
    for unit, size in (
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("μs", 1_000),
    ):
        count, ns = divmod(ns, size)
        if count:
            parts.append(f"{count}{unit}")
    if ns:
        parts.append(f"{ns}ns")
    return "".join(parts)


def metrics_event(info: ModelInfo, state: Mapping[str, Any]) -> Event:
    """The ``metrics`` SSE event of a model after a learn (its metrics and their count)."""
    data = {"model": info.name, "metrics": mt.values(state, info.flavor), "n": mt.count(state)}
    return Event("metrics", json.dumps(data))


class Monitoring(ServiceSetup):
    """The metrics and statistics part of :class:`~pipeforge.online.service.OnlineService`."""

    def metrics(self, name: str | None = None) -> dict:
        """``GET /api/metrics``: the metrics of model ``name`` (the default for ``None``)."""
        self.ensure_ready()
        if name is None:
            name = self.store.default()
            if name is None:
                if self.store.flavor() is None:
                    raise RequestError(
                        'no flavor has been set; POST /api/init with {"flavor": ...}'
                    )
                raise UnknownModelError(
                    "no default online model; name one with ?model= or upload one"
                )
        info = self.store.model(name)
        if info is None:
            raise UnknownModelError(f"no online model named {name!r}")
        return mt.values(cast(dict, info.metrics), info.flavor)  # model() reads the metrics

    def stats(self) -> dict:
        """``GET /api/stats``: calls and durations of predict and learn, over every process."""
        self.ensure_ready()
        rows = self.store.stats()
        recent = time.time() - 60.0
        answer = {}
        for endpoint in ("predict", "learn"):
            mine = [r for r in rows if r["endpoint"] == endpoint]
            n = sum(int(r["n"]) for r in mine)
            mean = int(sum(float(r["total"]) for r in mine) / n) if n else 0
            live = [r for r in mine if float(r["at"]) >= recent] or sorted(
                mine, key=lambda r: r["at"]
            )[-1:]
            weight = sum(int(r["n"]) for r in live)
            ewm = int(sum(float(r["ewm"]) * int(r["n"]) for r in live) / weight) if weight else 0
            answer[endpoint] = {
                "n_calls": n,
                "mean_duration": mean,
                "mean_duration_human": humanize_ns(mean),
                "ewm_duration": ewm,
                "ewm_duration_human": humanize_ns(ewm),
            }
        return answer
