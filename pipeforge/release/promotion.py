"""Promote: move one alias (``champion``) to the version another names (``challenger``).

Without conditions the move is made at once. With ``min_feedback`` and/or
``margin`` it is made only on evidence: live scores (one per version, over
the requests it answered and the feedback they got; see
:mod:`.live_scores`) of both versions, each over at least ``min_feedback``
scored samples (default 1 when only a margin is asked), and the
challenger's at least ``margin`` better than the champion's (higher for a
score like accuracy, lower for an error like MAE). When the target alias
names no version yet, there is nothing to beat and the challenger's own
evidence is enough. A refusal is a :class:`PromotionRefused` (exit status
1 from ``pf-admin promote``, 409 from the ``/alias`` route), whose
:class:`Decision` says both scores and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import PipeforgeError, RequestError
from .aliases import alias_version, set_alias

__all__ = ["Decision", "PromotionRefused", "decide", "promote", "evidence"]


@dataclasses.dataclass
class Decision:
    """What ``promote`` weighed and did."""

    alias: str  #: the alias moved (``champion``)
    source: str  #: the alias whose version it gets (``challenger``)
    version: int | None  #: the source's version
    previous: int | None  #: the alias's version before
    challenger: dict[str, Any] | None  #: the source version's live score (``score``, ``n``, ...)
    champion: dict[str, Any] | None  #: the previous version's live score
    promoted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for the ``/alias`` route and ``pf-admin promote --json``."""
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """What ``pf-admin promote`` prints."""

        def said(label: str, version: int | None, score: dict[str, Any] | None) -> str:
            if score is None:
                return f"  {label:<11}version {version}: no live score"
            return (
                f"  {label:<11}version {version}: {score.get('metric', 'score')} "
                f"{score['score']:.4f} over {score['n']} feedbacks"
            )

        return [
            said(self.source, self.version, self.challenger),
            said(self.alias, self.previous, self.champion),
            ("promoted: " if self.promoted else "not promoted: ") + self.reason,
        ]


class PromotionRefused(PipeforgeError):
    """The evidence does not allow the promotion (409 over HTTP, exit status 1)."""

    http_status = 409

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(
            f"{decision.alias} stays on version {decision.previous}: {decision.reason}"
        )


def _score(found: Any) -> dict[str, Any] | None:
    if found is None:
        return None
    if isinstance(found, Mapping):
        return dict(found)
    return {
        "score": float(found.score),
        "n": int(found.n),
        "metric": getattr(found, "metric", "score"),
        "higher_is_better": bool(getattr(found, "higher_is_better", True)),
    }


def decide(
    challenger: dict[str, Any] | None,
    champion: dict[str, Any] | None,
    *,
    has_champion: bool,
    min_feedback: int | None,
    margin: float | None,
) -> tuple[bool, str]:
    """``(promote?, why)`` from the two live scores and the conditions."""
    if min_feedback is None and margin is None:
        return True, "no evidence asked for"
    least = 1 if min_feedback is None else min_feedback
    if challenger is None or challenger["n"] < least:
        have = 0 if challenger is None else challenger["n"]
        return False, f"the challenger has {have} scored feedbacks; at least {least} needed"
    if not has_champion:
        return True, "no version to beat"
    if champion is None or champion["n"] < least:
        have = 0 if champion is None else champion["n"]
        return False, f"the champion has {have} scored feedbacks; at least {least} needed"
    higher = bool(challenger.get("higher_is_better", True))
    gain = challenger["score"] - champion["score"]
    if not higher:
        gain = -gain
    need = margin or 0.0
    if gain >= need:
        return True, f"better by {gain:.4f} (at least {need:g} needed)"
    return False, f"better by {gain:.4f}; at least {need:g} needed"


def promote(
    persister: Any,
    source: str,
    alias: str = "champion",
    *,
    scores: Mapping[int, Any] | None = None,
    min_feedback: int | None = None,
    margin: float | None = None,
) -> Decision:
    """Move ``alias`` to the version ``source`` names, if the evidence allows.

    ``scores``: live scores by version (:func:`.live_scores.scores_by_version`),
    needed only with ``min_feedback`` or ``margin``. Returns the
    :class:`Decision`; raises :class:`PromotionRefused` when it says no.
    """
    if min_feedback is not None and (isinstance(min_feedback, bool) or min_feedback < 0):
        raise RequestError(
            f"min_feedback must be a whole number of at least 0; got {min_feedback!r}"
        )
    if margin is not None and (isinstance(margin, bool) or margin < 0):
        raise RequestError(f"margin must be a number of at least 0; got {margin!r}")
    from .aliases import resolve_version

    version = resolve_version(persister, source)
    previous = alias_version(persister.list_properties(), alias)
    scores = scores or {}
    challenger = _score(scores.get(version))
    champion = _score(scores.get(previous)) if previous is not None else None
    if previous == version:
        ok, why = True, f"{alias} is on version {version} already"
    else:
        ok, why = decide(
            challenger,
            champion,
            has_champion=previous is not None,
            min_feedback=min_feedback,
            margin=margin,
        )
    decision = Decision(alias, source, version, previous, challenger, champion, ok, why)
    if not ok:
        raise PromotionRefused(decision)
    if previous != version:
        set_alias(persister, alias, version)
    return decision


def evidence(
    config: Mapping[str, Any], persister: Any, *, service: str | None = None
) -> dict[int, Any]:
    """Live scores by version from the prediction logs of the config's predict services.

    ``service``: only the one at that entry point (or config key). Every
    service that keeps a prediction log counts; the first one that has scores
    for a version gives that version's.
    """
    from .live_scores import scores_by_version
    from .recording import log_of

    found: dict[int, Any] = {}
    for key, value in config.items():
        if not getattr(value, "prediction_log", None) or not hasattr(value, "entry_point"):
            continue
        if service is not None and service not in (key, value.entry_point):
            continue
        log = log_of(key, value, config, persister)
        if log is None:
            continue
        settings = value.prediction_log if isinstance(value.prediction_log, Mapping) else {}
        scoring = settings.get("scoring") or config.get("scoring")
        scored = scores_by_version(
            log, service=value.entry_point, scoring=scoring if isinstance(scoring, str) else None
        )
        for version, score in scored.items():
            found.setdefault(version, score)
    return found
