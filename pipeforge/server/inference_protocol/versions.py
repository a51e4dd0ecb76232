"""The one place where a version in a protocol path (``.../versions/{version}``) is resolved.

A version is a stored version's number (``/v2/models/iris/versions/3``) or
an alias (``/v2/models/iris/versions/champion``, docs/releasing.md); no
version in the path is the active model. Anything else is a 404.

An alias is served from the model cache, which keeps every alias a request
asked for and follows it when it moves. A number is served from the cache
when it is the active version or an alias's; any other number is read from
the store once and kept for a short while (:data:`KEEP_SECONDS`) in a small
per-process table, so that a client pinning a version does not unpickle it
for every request. Stored versions never change, so the table can only be
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

__all__ = ["KEEP_SECONDS", "read_model", "resolve_version"]

_MAX_DIGITS = 18  # a version number fits in 64 bits
KEEP_SECONDS = 30.0  #: how long a version read for a path is kept (per process)
_KEPT = 4  # at most this many such versions per process

_lock = threading.Lock()
_kept: OrderedDict[tuple[int, int], tuple[float, Any]] = OrderedDict()


def resolve_version(persister: Any, text: str | None) -> int | str | None:
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


def read_model(persister: Any, text: str | None) -> Any:
    """The model the path's version names (the active model without one)."""
    version = resolve_version(persister, text)
    if version is None:
        return persister.read()
    if isinstance(version, str):
        try:
            return read_alias(persister, version)
        except UnknownAliasError as exc:
            raise NotFoundError(f"no model version {version!r}: {exc}") from None
    return _numbered(persister, version)


def _numbered(persister: Any, version: int) -> Any:
    for model in _cached_models(persister):
        if str((getattr(model, "__metadata__", None) or {}).get("version")) == str(version):
            return model
    key = (id(persister), version)
    now = time.monotonic()
    with _lock:
        kept = _kept.get(key)
        if kept is not None and now - kept[0] < KEEP_SECONDS:
            _kept.move_to_end(key)
            return kept[1]
    model = persister.read(version)  # outside the lock: a slow read blocks no other version
    with _lock:
        _kept[key] = (now, model)
        _kept.move_to_end(key)
        while len(_kept) > _KEPT:
            _kept.popitem(last=False)
    return model


def _cached_models(persister: Any) -> list[Any]:
    """The models a model cache holds already (the active one, the aliases'), if it is one."""
    held = getattr(persister, "cached_models", None)
    return list(held()) if callable(held) else []
