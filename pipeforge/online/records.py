"""The records an online store hands to the service and takes back from it.

They are plain data, kept apart from the store interface
(:mod:`pipeforge.online.store`) so that the service, the per-process copies
(:mod:`pipeforge.online.replicas`) and each store implementation read the
same few shapes: a model's record, an ``id``'s stored features, an SSE
event, a model of the config to seed, and what a copy needs to catch up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

__all__ = ["ModelInfo", "Pending", "Event", "Seed", "CatchUp", "new_uid", "now"]


def new_uid() -> str:
    """A fresh identity for a stored model: a replaced model never shares its cache entry."""
    return uuid.uuid4().hex


def now() -> float:
    """The time the stores write (``created``, statistics, listeners): seconds since the epoch."""
    return time.time()


@dataclass(slots=True)
class ModelInfo:
    """A stored model's record (without the model itself)."""

    name: str
    uid: str
    flavor: str
    version: int
    snapshot_version: int = 0
    n_learnt: int = 0
    source: str = ""
    created: float = 0.0
    metrics: dict | None = None


@dataclass(frozen=True)
class Pending:
    """What ``/api/predict`` stored under an ``id``: model name, features and prediction (JSON)."""

    model: str
    features: str
    prediction: str


@dataclass(frozen=True)
class Event:
    """An event for the SSE streams: ``kind`` (``predict``, ``learn``, ``metrics``) and JSON text."""

    kind: str
    data: str


@dataclass(frozen=True)
class Seed:
    """A model of the config, put into the store the first time the store sees its name."""

    name: str
    flavor: str
    blob: bytes
    default: bool = False
    metrics: dict = field(default_factory=dict)


@dataclass
class CatchUp:
    """What a process needs to bring its copy of a model to the stored version.

    ``snapshot`` is ``None`` when the copy at ``(uid, have_version)`` can
    simply replay ``entries`` (``(version, features JSON, ground truth JSON)``).
    """

    uid: str
    version: int
    snapshot: bytes | None = None
    snapshot_version: int = 0
    entries: list[tuple[int, str, str]] = field(default_factory=list)
