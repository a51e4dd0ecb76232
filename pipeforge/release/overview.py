"""One summary of a release for people: aliases, traffic, live scores over time, drift.

:func:`release_overview` gathers what the dashboard's Release panel shows
(``GET /release``): each alias's version with its tags and stored scores,
each predict service's traffic (which alias answers which share of its
requests, which one shadows), the live scores (per canary arm and per
version, the evidence ``pf-admin promote`` weighs), one series per version
of its live score over time (:mod:`.timeline`), and the drift report
(:mod:`.drift`) when the config watches drift. It reads the model store's
metadata and properties, the prediction logs and nothing else; no input of
any client is in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .aliases import ACTIVE, aliases_in, tags_of
from .live_scores import DEFAULT_WINDOW, live_scores
from .routing import routing_for
from .timeline import score_timeline

__all__ = ["release_overview", "traffic_of", "logged_scores"]

#: metadata keys kept for each aliased version (besides its ``score_*``)
_KEPT = ("train_timestamp", "test_timestamp", "train_rows", "estimator")


def traffic_of(
    key: str, service: Any, config: Mapping[str, Any], properties: Mapping[str, Any]
) -> dict[str, Any]:
    """Who answers a predict service's requests, as shares of 1.

    ``{"service", "key", "model_alias", "traffic", "stored", "shares",
    "shadow", "from_request", "logged"}``: ``traffic`` is the split in force
    (the stored one, else the config's; ``None`` without one), ``shares``
    maps each alias that answers to its share (an arm whose alias names no
    version gets none), ``shadow`` is ``{"alias", "fraction"}`` or ``None``.
    """
    from .aliases import alias_version, traffic_in

    routing = routing_for(key, service, config)
    entry_point = getattr(service, "entry_point", "/predict")
    weights = routing.weights(properties) if routing is not None else None
    shares: dict[str, float] = {}
    if weights:
        arms = {
            name: weight
            for name, weight in weights.items()
            if weight > 0 and alias_version(properties, name) is not None
        }
        total = sum(arms.values())
        shares = {name: weight / total for name, weight in sorted(arms.items())} if total else {}
    else:
        shares = {(routing.model_alias if routing else None) or ACTIVE: 1.0}
    shadow = getattr(service, "shadow", None)
    if isinstance(shadow, Mapping) and isinstance(shadow.get("alias"), str):
        fraction = shadow.get("fraction", 1)
        shadow = {"alias": shadow["alias"], "fraction": float(fraction)}
    else:
        shadow = None
    stored = routing is not None and traffic_in(properties, entry_point) is not None
    return {
        "service": entry_point,
        "key": key,
        "model_alias": routing.model_alias if routing else None,
        "traffic": weights,
        "stored": bool(stored),
        "shares": shares,
        "shadow": shadow,
        "from_request": bool(routing and routing.from_request),
        "logged": bool(getattr(service, "prediction_log", None)),
    }


def logged_scores(
    logs: Mapping[str, Any],
    entry_points: Mapping[str, str],
    scoring: Mapping[str, Any],
    *,
    window: int = DEFAULT_WINDOW,
) -> dict[str, list[dict[str, Any]]]:
    """Live scores of the logs (by config key): ``{"arms": [...], "versions": [...], "timeline": [...]}``.

    ``arms``: per service, role, alias and version; ``versions``: per
    version over every answer it gave, the version with the most feedback
    winning when several services logged it; ``timeline``: per version.
    """
    arms: list[dict[str, Any]] = []
    versions: dict[Any, dict[str, Any]] = {}
    timeline: dict[Any, dict[str, Any]] = {}
    for key, log in logs.items():
        point = entry_points.get(key)
        scorer = scoring.get(key)
        for by in ("arm", "version"):
            for found in live_scores(log, service=point, scoring=scorer, window=window, by=by):
                row = found.as_dict()
                if by == "arm":
                    arms.append(row)
                elif found.version not in versions or found.n > versions[found.version]["n"]:
                    versions[found.version] = {**row, "service": point}
        for line in score_timeline(log, service=point, scoring=scorer, window=window):
            last = line["points"][-1]["n"] if line["points"] else 0
            known = timeline.get(line["version"])
            if known is None or last > known["points"][-1]["n"]:
                timeline[line["version"]] = {**line, "service": point}
    order = sorted(versions, key=lambda v: v or 0)
    return {
        "arms": arms,
        "versions": [versions[v] for v in order],
        "timeline": [timeline[v] for v in sorted(timeline, key=lambda v: v or 0)],
    }


def _version_row(model: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"version": model.get("version"), "aliases": names}
    row["tags"] = tags_of(model)
    row["scores"] = {
        k: v for k, v in model.items() if k.startswith("score_") and isinstance(v, int | float)
    }
    row.update({k: model[k] for k in _KEPT if k in model})
    return row


def release_overview(
    persister: Any,
    services: list[tuple[str, Any]],
    config: Mapping[str, Any],
    *,
    scores: Mapping[str, list[dict[str, Any]]] | None = None,
    drift: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The release at a glance (see the module docstring), JSON-able.

    ``services``: the predict services as ``(config key, service)``;
    ``scores``: what :func:`logged_scores` gives (``None``: no logs);
    ``drift``: a drift report (:func:`.drift.drift_report`), or ``None``.
    The answer: ``{"aliases": {name: version}, "versions": [{"version",
    "aliases", "tags", "scores", "train_timestamp", ...}, ...], "services":
    [traffic_of(...), ...], "live_scores": [...], "version_scores": [...],
    "timeline": [...], "drift": report or None}``; ``versions`` holds the
    versions an alias names.
    """
    properties = persister.list_properties()
    found = aliases_in(properties)
    by_version: dict[int, list[str]] = {}
    for name, version in found.items():
        by_version.setdefault(version, []).append(name)
    models = {m.get("version"): m for m in persister.list_models()}
    versions = [
        _version_row(models[v], names) for v, names in sorted(by_version.items()) if v in models
    ]
    scores = scores or {}
    return {
        "aliases": found,
        "versions": versions,
        "services": [traffic_of(key, s, config, properties) for key, s in services],
        "live_scores": list(scores.get("arms", [])),
        "version_scores": list(scores.get("versions", [])),
        "timeline": list(scores.get("timeline", [])),
        "drift": dict(drift) if drift is not None else None,
    }
