"""``GET /metrics``: Prometheus metrics of the web service, summed over gunicorn workers.

=============================================  =========  ===================================
metric                                         type       labels
=============================================  =========  ===================================
``pipeforge_requests_total``                   counter    ``route``, ``method``, ``status``
``pipeforge_request_duration_seconds``         histogram  ``route``, ``method``
``pipeforge_predictions_total``                counter    ``service``, ``model_version``
                                                          (samples predicted)
``pipeforge_model_calls_total``                counter    ``service``, ``model_version``
                                                          (fewer than requests with batching)
``pipeforge_model_version``                    gauge      the version the scraped process serves
``pipeforge_model_age_seconds``                gauge      now - the model's ``train_timestamp``
``pipeforge_model_cache_refreshes_total``      counter    ``outcome``: ``loaded``, ``unchanged``
``pipeforge_model_cache_refresh_failures_total``  counter
``pipeforge_jobs_total``                       counter    ``job``, ``state``: ``running``
                                                          (started), ``finished``, ``error``
``pipeforge_jobs_running``                     gauge      ``job`` (summed over live workers)
``pipeforge_drift_*``                          gauge      with a ``drift`` entry: see
                                                          :mod:`.metrics_drift`
``pipeforge_live_score``                       gauge      with a ``prediction_log``: see
                                                          :mod:`.metrics_release`
``pipeforge_release_events_total``             counter    ``service``, ``event`` (the same)
=============================================  =========  ===================================

``route`` is the URL rule (``/predict``, ``/pipelines/<name>/main``), or
``unmatched`` for a path no route takes, so clients cannot blow up the label
set. A request whose input is rejected counts as a 4xx request and never as a
model call or a prediction.

Cost: a write to a multiprocess value takes a lock and an mmap update (~2 µs;
a histogram's observation writes two), so the per-request counters and
latency buckets are summed in memory and written four times a
second by a thread of each worker (and before every scrape): a scrape may miss
the last quarter second of another worker's requests, never more.

Several worker processes: prometheus-client's multiprocess mode keeps each
worker's values in files of a shared directory and ``/metrics`` sums them.
:func:`prepare_multiprocess` (called by ``pipeforge.wsgi`` before anything
imports prometheus_client) picks that directory under gunicorn by itself — one
per gunicorn master, in the system's temp folder, removed once the master is
gone; a worker's live gauges are dropped when it exits. A
``PROMETHEUS_MULTIPROC_DIR`` you export yourself is used as it is (and left
for you to clean). Other single-process servers (``pf-devserver``) keep the
values in memory.

Config entry (the defaults shown; ``'metrics': False`` turns it off)::

    'metrics': {'enabled': True, 'path': '/metrics',
                'decorator_list_name': 'metrics_decorators'},
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .metrics_dir import prepare_multiprocess

if TYPE_CHECKING:
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from .lifecycle import AppState

__all__ = ["Metrics", "register_metrics", "prepare_multiprocess", "settings"]

logger = logging.getLogger(__name__)

_DEFAULTS = {"enabled": True, "path": "/metrics", "decorator_list_name": "metrics_decorators"}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FLUSH_SECONDS = 0.25


def settings(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``metrics`` config entry over its defaults; ``None`` when switched off."""
    from .openapi import settings as merge

    return merge(config, "metrics", _DEFAULTS)


def _multiprocess() -> bool:
    from prometheus_client import values

    return values.ValueClass.__name__ != "MutexValue"


# -- the metrics ------------------------------------------------------------------


class Metrics:
    """The web service's metrics, registered on a registry of their own."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.drift: Any = None  # the app's DriftMonitor, for the drift gauges
        self.collectors: list[Any] = []  # read when scraped: the live scores (.metrics_release)

    def setup(self) -> Metrics:
        """Create the metric objects (imports prometheus_client)."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pipeforge_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "pipeforge_request_duration_seconds",
            "Time to answer a request, by route and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "pipeforge_predictions",
            "Samples predicted, by predict service and model version.",
            ["service", "model_version"],
            registry=registry,
        )
        self.model_calls = Counter(
            "pipeforge_model_calls",
            "Calls of the model, by predict service and model version.",
            ["service", "model_version"],
            registry=registry,
        )
        self.refreshes = Counter(
            "pipeforge_model_cache_refreshes",
            "Model cache refreshes that succeeded, by outcome (loaded a new model or unchanged).",
            ["outcome"],
            registry=registry,
        )
        self.refresh_failures = Counter(
            "pipeforge_model_cache_refresh_failures",
            "Model cache refreshes that failed.",
            registry=registry,
        )
        self.jobs = Counter(
            "pipeforge_jobs",
            "Background jobs by name and state reached (running = started).",
            ["job", "state"],
            registry=registry,
        )
        self.jobs_running = Gauge(
            "pipeforge_jobs_running",
            "Background jobs running now.",
            ["job"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._children: dict = {}
        self.tally = _Tally(_FLUSH_SECONDS)
        return self

    # -- what the app reports ---------------------------------------------------------

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        self.tally.request(children[0], children[1], seconds)

    def model_called(self, service: Any, model: Any, rows: int) -> None:
        version = (getattr(model, "__metadata__", None) or {}).get("version", "")
        key = (id(service), version)
        children = self._children.get(key)
        if children is None:
            name = getattr(service, "entry_point", None) or type(service).__name__
            children = (
                self.model_calls.labels(name, str(version)),
                self.predictions.labels(name, str(version)),
            )
            self._children[key] = children
        self.tally.add(children[0])
        self.tally.add(children[1], rows)

    def cache_refreshed(self, outcome: str) -> None:
        if outcome == "failed":
            self.refresh_failures.inc()
        else:
            self.refreshes.labels(outcome).inc()

    def job_changed(self, name: str, state: str) -> None:
        self.jobs.labels(name, state).inc()
        if state == "running":
            self.jobs_running.labels(name).inc()
        else:
            self.jobs_running.labels(name).dec()

    # -- the scrape -------------------------------------------------------------------

    def scrape_registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` renders: all workers' values plus the served model."""
        self.tally.flush()
        registry = getattr(self, "_scrape", None)
        if registry is None:
            from prometheus_client import CollectorRegistry

            if _multiprocess():
                from prometheus_client import multiprocess

                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
            else:
                registry = CollectorRegistry()
                registry.register(_Forward(self.registry))
            registry.register(_ModelCollector(self.state))
            if self.drift is not None:  # the drift gauges (pipeforge.server.metrics_drift)
                from .metrics_drift import DriftCollector

                registry.register(DriftCollector(self.drift))
            for collector in self.collectors:
                registry.register(collector)
            self._scrape = registry
        return registry


class _Tally:
    """Counter increments summed in memory, written to the counters every ``interval`` s.

    The thread that writes them starts with the first increment of each
    process (so a forked worker gets its own) and is stopped by :meth:`stop`;
    what is left is written at process exit.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._sums: dict = {}
        self._observed: dict = {}  # histogram -> [sum, count per bucket]
        self._pid: int | None = None
        self._stopped = threading.Event()

    def add(self, child: Any, amount: float = 1.0) -> None:
        with self._lock:
            self._sums[child] = self._sums.get(child, 0.0) + amount
            self._started()

    def request(self, counter: Any, histogram: Any, seconds: float) -> None:
        """One request: ``counter`` +1 and ``seconds`` observed by ``histogram``, under one lock.

        An observation of a multiprocess histogram writes two mmapped values
        (~6 µs); here it is a bucket count in memory, written with the rest.
        """
        bounds = getattr(histogram, "_upper_bounds", None)
        if bounds is None or not hasattr(histogram, "_buckets"):  # not prometheus_client's own
            histogram.observe(seconds)
            return self.add(counter)
        with self._lock:
            self._sums[counter] = self._sums.get(counter, 0.0) + 1.0
            seen = self._observed.get(histogram)
            if seen is None:
                seen = self._observed[histogram] = [0.0] + [0] * len(bounds)
            seen[0] += seconds
            seen[1 + bisect.bisect_left(bounds, seconds)] += 1
            self._started()

    def _started(self) -> None:
        # with the lock held: a writing thread in each process (a forked worker gets its own)
        if self._pid != os.getpid() and not self._stopped.is_set():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="pipeforge-metrics", daemon=True).start()
            atexit.register(self.flush)

    def flush(self) -> None:
        with self._lock:
            sums, self._sums = self._sums, {}
            observed, self._observed = self._observed, {}
        for child, amount in sums.items():
            child.inc(amount)
        for histogram, (total, *counts) in observed.items():
            histogram._sum.inc(total)
            for bucket, count in zip(histogram._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        self._stopped.set()
        self.flush()


class _Forward:
    """This process's own registry inside the scrape registry."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


class _ModelCollector:
    """The served model's version and age, read when scraped."""

    def __init__(self, state):
        self.state = state

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        version = GaugeMetricFamily(
            "pipeforge_model_version", "Version of the model this process serves."
        )
        age = GaugeMetricFamily(
            "pipeforge_model_age_seconds",
            "Seconds since the served model was trained (its train_timestamp).",
        )
        persister = self.state.model_persister
        try:
            model = persister.read() if persister is not None else None
        except Exception:  # no model yet: the gauges are absent
            model = None
        metadata = getattr(model, "__metadata__", None) or {}
        if isinstance(metadata.get("version"), int | float):
            version.add_metric([], float(metadata["version"]))
        trained = _timestamp(metadata.get("train_timestamp"))
        if trained is not None:
            age.add_metric([], max(0.0, time.time() - trained))
        yield version
        yield age


def _timestamp(text) -> float | None:
    from datetime import datetime, timezone

    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # noqa: UP017 (Python 3.10)
    return moment.timestamp()


# -- wiring into the app ----------------------------------------------------------


def register_metrics(app: Flask, config: Mapping[str, Any], state: AppState) -> Metrics | None:
    """Add ``/metrics`` and the prediction, cache and job counting to ``app``.

    Requests are counted by the app's front door (:mod:`.front_door`), which
    gets the :class:`Metrics` returned here.
    """
    options = settings(config)
    if options is None:
        return None
    from flask import Response

    from ..factory import decorate
    from ..persistence.model_cache import CachedUpdatePersister
    from .openapi import describe_route

    metrics = Metrics(state).setup()
    app.extensions["pipeforge_metrics"] = metrics
    metrics.drift = app.extensions.get("pipeforge_drift")
    if "pipeforge_release_records" in app.extensions:  # the prediction log's counts, live scores
        from .metrics_release import attach_release_metrics

        attach_release_metrics(metrics, app.extensions["pipeforge_release_records"])
    state.stoppers.append(metrics.tally.stop)
    for _, service in state.services:
        if callable(getattr(service, "observe", None)):
            service.observe(metrics.model_called)
    seen = set()
    for component in [state.model_persister, *config.values()]:
        if isinstance(component, CachedUpdatePersister) and id(component) not in seen:
            seen.add(id(component))
            component.observe(metrics.cache_refreshed)
    state.jobs.observe(metrics.job_changed)

    def metrics_view() -> Response:
        """Prometheus metrics of the service (all workers)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(
            generate_latest(metrics.scrape_registry()),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    view = decorate(metrics_view, config, options["decorator_list_name"])
    app.add_url_rule(options["path"], endpoint="metrics", view_func=view)
    describe_route(
        app,
        "metrics",
        {
            "get": {
                "operationId": "metrics",
                "tags": ["service"],
                "summary": "Prometheus metrics, summed over the server's workers",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    return metrics
