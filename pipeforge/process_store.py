"""The process store: what one running program keeps in memory for its components.

The served model (``model``), scheduled data (``data``) and job records
(``process_metadata``) live here so that ``/alive`` can report them. Each
config owns one store; there is no module-level singleton.
"""

from __future__ import annotations

import threading
from collections import UserDict
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

__all__ = ["ProcessStore"]


class ProcessStore(UserDict[str, Any]):
    """A thread-safe dict that remembers when each entry was last set."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._lock = threading.RLock()
        self.mtime: dict[str, datetime] = {}
        super().__init__(*args, **kwargs)
        self.data.setdefault("process_metadata", {})

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value
            self.mtime[key] = datetime.now(timezone.utc)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self.data[key]
            self.mtime.pop(key, None)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self.data[key]

    def missing(self, required: Iterable[str]) -> list[str]:
        """The names in ``required`` that have no entry yet."""
        with self._lock:
            return [name for name in required if name not in self.data]
