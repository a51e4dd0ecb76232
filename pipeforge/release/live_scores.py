"""Live scores: how each version does on the requests it answered, once their ground truth came.

A logged prediction joined with its feedback (:mod:`.feedback`) is one
scored pair per sample; :func:`live_scores` folds the newest ``window``
pairs of each group into the counters of :mod:`.scores` (the very
counters online models keep for their progressive validation) and reads the
metric the scorer names. Groups, by ``by``:

- ``"arm"`` (the default): service, role (``primary``: the answer the caller
  got; ``shadow``: the shadow's copy), alias (the canary arm or the served
  alias; ``None`` for the active version) and version;
- ``"alias"``: service, role and alias;
- ``"version"``: the version alone, every answer it gave (primary or shadow,
  any service) counted — the evidence ``pf-admin promote`` weighs.

The scorer is the service's ``prediction_log.scoring``, else the config's
``scoring`` when it is a name :func:`.scores.scorer` knows; with neither,
answers that are all integers, texts or class probabilities are scored as
classes (``Accuracy``), numbers as a regression (``MAE``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from . import scores as sc
from .prediction_log import LogStore, iter_log, log_settings

__all__ = [
    "LiveScore",
    "live_scores",
    "scores_by_version",
    "scores_in",
    "scoring_of",
    "DEFAULT_WINDOW",
]

DEFAULT_WINDOW = 1000
_MOST_READ = 200_000  #: logged requests with feedback read at most, newest first


@dataclasses.dataclass
class LiveScore:
    """One group's live score."""

    service: str | None
    role: str | None  #: ``primary`` or ``shadow`` (``None`` when grouped by version)
    alias: str | None
    version: int | None
    metric: str  #: the scorer's metric, e.g. ``Accuracy`` or ``MAE``
    score: float  #: its value over the window
    n: int  #: scored samples in the window
    higher_is_better: bool
    metrics: dict[str, float]  #: every metric of the flavor
    last_feedback: float | None  #: when the newest feedback counted came

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for ``/live-scores``, ``pf-list --json`` and the dashboard."""
        return dataclasses.asdict(self)


def _kind(value: Any) -> str:
    if isinstance(value, Mapping | str | bool) or value is None:
        return "class"
    if isinstance(value, int):
        return "int"
    return "number"


def _seen(pairs: list[tuple[Any, Any]]) -> str:
    kinds = {_kind(v) for pair in pairs for v in pair}
    return "regression" if "number" in kinds and "class" not in kinds else "multiclass"


def _truth_for(prediction: Any, truth: Any) -> Any:
    """Probabilities come back with text labels (JSON keys): compare the truth as text then."""
    if isinstance(prediction, Mapping) and not isinstance(truth, str):
        return str(truth).lower() if isinstance(truth, bool) else str(truth)
    return truth


def _score(pairs: list[tuple[Any, Any]], scorer: sc.Scorer) -> tuple[str, float, dict, int, bool]:
    flavor, metric = scorer.resolve(_seen(pairs))
    state = sc.new_state(flavor)
    for prediction, truth in pairs:
        try:
            change = sc.delta(flavor, _truth_for(prediction, truth), prediction)
        except (TypeError, ValueError):
            continue  # a ground truth that does not fit the answer (a text for a regression)
        state = sc.merge(state, change)
    values = sc.values(state, flavor)
    return (
        metric,
        values.get(metric, 0.0),
        values,
        sc.count(state),
        metric not in sc.LOWER_IS_BETTER,
    )


def live_scores(
    log: LogStore,
    *,
    service: str | None = None,
    scoring: Any = None,
    window: int = DEFAULT_WINDOW,
    since: float | None = None,
    by: str = "arm",
) -> list[LiveScore]:
    """The live scores of the log's groups (see the module docstring), best-known first.

    ``scoring``: a scorer name (see :func:`.scores.scorer`); ``window``: the
    newest scored samples per group; ``since``: only predictions answered
    since then (seconds since the epoch).
    """
    if by not in ("arm", "alias", "version"):
        raise ValueError(f"by must be 'arm', 'alias' or 'version'; got {by!r}")
    scorer = sc.scorer(scoring) or sc.Scorer(None, None)
    groups: dict[tuple, list[tuple[Any, Any]]] = {}
    latest: dict[tuple, float | None] = {}
    entries = iter_log(
        log, service=service, since=since, newest_first=True, with_feedback=True, limit=_MOST_READ
    )
    for entry in entries:
        truths = entry.ground_truth or []
        answers = [("primary", entry.alias, entry.version, entry.outputs)]
        if entry.shadow_outputs is not None:
            answers.append(
                ("shadow", entry.shadow_alias, entry.shadow_version, entry.shadow_outputs)
            )
        for role, alias, version, outputs in answers:
            if by == "version":
                key: tuple = (None, None, None, version)
            elif by == "alias":
                key = (entry.service, role, alias, None)
            else:
                key = (entry.service, role, alias, version)
            pairs = groups.setdefault(key, [])
            if len(pairs) >= window:
                continue
            latest.setdefault(key, entry.feedback_time)
            room = window - len(pairs)
            pairs.extend(list(zip(outputs, truths, strict=False))[:room])
    found = []
    for (point, role, alias, version), pairs in groups.items():
        metric, score, values, n, higher = _score(pairs, scorer)
        found.append(
            LiveScore(
                service=point,
                role=role,
                alias=alias,
                version=version,
                metric=metric,
                score=score,
                n=n,
                higher_is_better=higher,
                metrics=values,
                last_feedback=latest.get((point, role, alias, version)),
            )
        )
    found.sort(key=lambda s: (str(s.service), str(s.role), str(s.alias), s.version or 0))
    return found


def scores_by_version(
    log: LogStore,
    *,
    service: str | None = None,
    scoring: Any = None,
    window: int = DEFAULT_WINDOW,
    since: float | None = None,
) -> dict[int, LiveScore]:
    """Each version's live score over every answer it gave (primary or shadow)."""
    scored = live_scores(
        log, service=service, scoring=scoring, window=window, since=since, by="version"
    )
    return {s.version: s for s in scored if s.version is not None}


def scoring_of(key: str, service: Any, config: Mapping[str, Any]) -> Any:
    """The scorer of a service's live scores: its ``prediction_log.scoring``, else the config's."""
    settings = log_settings(key, getattr(service, "prediction_log", None))
    own = settings.scoring if settings is not None else None
    return own if own is not None else config.get("scoring")


def scores_in(
    config: Mapping[str, Any],
    persister: Any = None,
    *,
    by: str = "version",
    window: int = DEFAULT_WINDOW,
) -> list[LiveScore]:
    """The live scores of every logged predict service of ``config`` (``pf-list``, promote).

    With ``by="version"``, a version served by several logged services gets
    the score of the one with the most feedback.
    """
    from .prediction_log import logs_in

    found: list[LiveScore] = []
    for key, log in logs_in(config, persister).items():
        service = config[key]
        point = getattr(service, "entry_point", None)
        scoring = scoring_of(key, service, config)
        found.extend(live_scores(log, service=point, scoring=scoring, window=window, by=by))
    if by != "version":
        return found
    best: dict[Any, LiveScore] = {}
    for score in found:
        if score.version not in best or score.n > best[score.version].n:
            best[score.version] = score
    return list(best.values())
