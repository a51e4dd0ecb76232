"""What the serving path hands to the release machinery after each answer.

The predict flow (:mod:`pipeforge.server.views`) builds one :class:`Answered`
per answered request and gives it to the service's :class:`AnswerSink` (the
prediction log, the shadow runner, live scores). A sink must not block the
request: it queues and returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

__all__ = ["Answered", "AnswerSink"]


@dataclasses.dataclass
class Answered:
    """One answered prediction request, as the release machinery sees it."""

    request_id: str  #: ``X-Request-ID`` of the request, or one generated and returned
    service: str  #: the predict service's entry point, e.g. ``/predict``
    version: int | None  #: the stored version that answered
    alias: str | None  #: the alias (or canary arm) it was reached by; ``None``: the active one
    X: Any  #: the model input (array or ``DataFrame``), converted to JSON off the request path
    names: list[str]  #: the input's field names, in order
    output: Any  #: the answer's ``result`` (one value for a GET, a list for a POST)
    single: bool  #: a GET's one sample
    latency: float  #: seconds from the request's arrival to its answer
    time: float  #: when it was answered (``time.time()``)
    shadow_alias: str | None = None  #: the alias a copy of the request went to, if any
    shadow_version: int | None = None
    shadow_output: Any = None  #: filled in by the shadow runner, before the record is written


class AnswerSink(Protocol):
    """Takes answered predictions; returns at once (work happens off the request path)."""

    def answered(self, answer: Answered) -> None:
        """Queue ``answer`` for logging, shadowing and scoring."""
