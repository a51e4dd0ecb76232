"""Online learning: models that learn one sample at a time, served with chantilly's API.

See ``docs/online-learning.md``. The routes live in :mod:`pipeforge.online.http`,
the logic in :mod:`pipeforge.online.service`, the shared state in a store
(:class:`SQLStore` by default, :class:`RedisStore` for high traffic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .compose import pipeline
from .partial_fit import PartialFitModel, as_online_model
from .sql_store import SQLStore
from .store import OnlineStore

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = [
    "SQLStore",
    "RedisStore",
    "OnlineStore",
    "PartialFitModel",
    "as_online_model",
    "pipeline",
]


def __getattr__(name: str) -> type[RedisStore]:
    if name == "RedisStore":  # redis is an optional dependency
        from .redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
