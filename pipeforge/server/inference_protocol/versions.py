"""The one place where a version in a protocol path (``.../versions/{version}``) is resolved.

A version is a stored version's number (``/v2/models/iris/versions/3``) or
an alias (``/v2/models/iris/versions/champion``, docs/releasing.md); no
version in the path is the active model. Anything else is a 404.

An alias is served from the model cache, which keeps every alias a request
asked for and follows it when it moves. A number is served from the cache
when it is the active version or an alias's; any other number is read from
the store once and kept for a short while (:data:`KEEP_SECONDS`) by the
app's :class:`VersionReader`, so that a client pinning a version does not
unpickle it for every request. Stored versions never change, so the table can only be
stale about a deleted version, for at most that while.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from ...errors import UnknownAliasError
from ...release.aliases import alias_problem, read_alias
from .answers import NotFoundError

__all__ = ["KEEP_SECONDS", "VersionReader", "resolve_version"]

_MAX_DIGITS = 18  # a version number fits in 64 bits
KEEP_SECONDS = 30.0  #: how long a version read for a path is kept
_KEPT = 4  # at most this many such versions per app


def resolve_version(text: str | None) -> int | str | None:
    """What the path's version names: a number, an alias name, or ``None`` (the active one)."""
    if text is None:
        return None
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    if alias_problem(text) is None:
        return text
    raise NotFoundError(
        f"no model version {text!r}: a version is a stored version's number or an alias"
    )


class VersionReader:
    """Reads the model a path's version names from ``persister``; one per app."""

    def __init__(self, persister: Any) -> None:
        self.persister = persister
        self._lock = threading.Lock()
        self._kept: OrderedDict[int, tuple[float, Any]] = OrderedDict()

    def read(self, text: str | None) -> Any:
        """The model the path's version names (the active model without one)."""
        version = resolve_version(text)
        if version is None:
            return self.persister.read()
        if isinstance(version, str):
            try:
                return read_alias(self.persister, version)
            except UnknownAliasError as exc:
                raise NotFoundError(f"no model version {version!r}: {exc}") from None
        return self._numbered(version)

    def _numbered(self, version: int) -> Any:
        held = getattr(self.persister, "cached_models", None)  # a model cache's active and aliases
        for model in held() if callable(held) else ():
            if str((getattr(model, "__metadata__", None) or {}).get("version")) == str(version):
                return model
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(version)
            if kept is not None and now - kept[0] < KEEP_SECONDS:
                self._kept.move_to_end(version)
                return kept[1]
        model = self.persister.read(version)  # outside the lock: a slow read blocks no other
        with self._lock:
            self._kept[version] = (now, model)
            self._kept.move_to_end(version)
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return model
