"""The drift gauges of ``/metrics`` (with a ``drift`` config entry; :mod:`pipeforge.release.drift`).

=============================================  =====  =========================================
metric                                         type   labels
=============================================  =====  =========================================
``pipeforge_drift_psi``                        gauge  ``service``, ``model_version``, ``feature``
``pipeforge_drift_outside_share``              gauge  ``service``, ``model_version``, ``feature``
``pipeforge_drift_samples``                    gauge  ``service``, ``model_version``
``pipeforge_drift_detected``                   gauge  ``service``, ``model_version`` (1: drifted)
=============================================  =====  =========================================

They are read from the drift report when scraped (a report is reused for
the entry's ``every`` seconds), so every worker answers the same numbers:
they are computed from the shared prediction log, not summed over workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["DriftCollector"]


class DriftCollector:
    """A prometheus-client collector of a :class:`~pipeforge.release.drift.DriftMonitor`."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        per_feature = ["service", "model_version", "feature"]
        psi = GaugeMetricFamily(
            "pipeforge_drift_psi",
            "Population stability index of a feature's recent inputs against its training bins.",
            labels=per_feature,
        )
        outside = GaugeMetricFamily(
            "pipeforge_drift_outside_share",
            "Share of a feature's recent inputs outside its training range.",
            labels=per_feature,
        )
        samples = GaugeMetricFamily(
            "pipeforge_drift_samples",
            "Logged samples the drift of a version was computed over.",
            labels=["service", "model_version"],
        )
        detected = GaugeMetricFamily(
            "pipeforge_drift_detected",
            "1 when a feature of the version drifted past the configured threshold, else 0.",
            labels=["service", "model_version"],
        )
        for version in self.monitor.report().get("versions") or []:
            labels = [str(version["service"]), str(version["version"])]
            samples.add_metric(labels, float(version["rows"]))
            detected.add_metric(labels, 1.0 if version["drifted"] else 0.0)
            for feature in version.get("features") or []:
                if feature.get("psi") is not None:
                    psi.add_metric([*labels, str(feature["name"])], float(feature["psi"]))
                if feature.get("outside") is not None:
                    outside.add_metric([*labels, str(feature["name"])], float(feature["outside"]))
        yield from (psi, outside, samples, detected)
