"""The models of the aliases a server serves, kept beside the active one by the model cache.

:class:`~pipeforge.persistence.CachedUpdatePersister` holds the active
model; a server whose predict services serve other aliases (``model_alias``,
a canary's ``traffic``, a ``shadow``, aliases a request may ask for) also
needs theirs. :class:`AliasModels` keeps them, one model per stored version
(two aliases on one version share it, and so does the active model), and is
refreshed with the cache: one read of the store's properties gives every
alias's version and every traffic split, the versions not held yet are read,
and the new ``{alias: model}`` table replaces the old one in one assignment.
A request sees the old table or the new one, never half of each, and a model
a request is using stays alive until the request is done with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import (
    NoModelError,
    PersistenceError,
    StoreUnavailableError,
    UnknownAliasError,
    UnknownVersionError,
)
from ..release.aliases import (
    ACTIVE,
    ALIAS_PREFIX,
    TRAFFIC_PREFIX,
    alias_version,
    aliases_in,
    traffic_in,
)

__all__ = ["AliasModels"]

logger = logging.getLogger(__name__)


def _version_of(model: Any) -> str | None:
    version = (getattr(model, "__metadata__", None) or {}).get("version")
    return None if version is None else str(version)


class AliasModels:
    """The models of the aliases wanted, by alias; swapped whole on each :meth:`load`."""

    def __init__(self) -> None:
        self.wanted: set[str] = set()
        self.every = False  #: every alias the store has
        self.traffic = False  #: every alias a stored traffic split names
        self.models: dict[str, Any] = {}
        self.properties: dict[str, str] = {}
        self.loaded = False  #: whether a load ran (the properties are the store's)

    @property
    def active(self) -> bool:
        """Whether any alias beyond the active one is wanted."""
        return bool(self.wanted) or self.every or self.traffic

    def want(
        self, names: Iterable[str] = (), *, every: bool = False, traffic: bool = False
    ) -> None:
        """Keep the models of ``names`` too (and, with ``every``/``traffic``, of those aliases)."""
        self.wanted.update(n for n in names if n != ACTIVE)
        self.every = self.every or every
        self.traffic = self.traffic or traffic

    def _names(self, properties: Mapping[str, str]) -> set[str]:
        names = set(self.wanted)
        if self.every:
            names.update(k[len(ALIAS_PREFIX) :] for k in properties if k.startswith(ALIAS_PREFIX))
        if self.traffic:
            for key in properties:
                if key.startswith(TRAFFIC_PREFIX):
                    names.update(traffic_in(properties, key[len(TRAFFIC_PREFIX) :]) or ())
        names.discard(ACTIVE)
        return names

    def load(self, properties: Mapping[str, str], impl: Any, active_model: Any) -> bool:
        """Read the wanted aliases' models as ``properties`` name them; swap; return whether any changed.

        A version already held (by an alias or as the active model) is not
        read again. One that is gone meanwhile leaves its alias out; one that
        cannot be loaded (refused, broken) keeps the alias's previous model
        and is logged. A store that cannot be read raises, and the old table
        stays.
        """
        current = self.models
        held = {_version_of(m): m for m in current.values()}
        if active_model is not None:
            held[_version_of(active_model)] = active_model
        fresh: dict[str, Any] = {}
        for name in sorted(self._names(properties)):
            version = alias_version(properties, name)
            if version is None:
                continue
            model = held.get(str(version))
            if model is None:
                try:
                    model = impl.read(version)
                except (UnknownVersionError, NoModelError):
                    continue  # deleted since the properties were read
                except StoreUnavailableError:
                    raise
                except PersistenceError as exc:
                    logger.warning(
                        "cannot load version %s for the alias %r: %s", version, name, exc
                    )
                    model = current.get(name)
                    if model is None:
                        continue
                held[str(version)] = model
                logger.info("model cache now holds version %s for alias %r", version, name)
            fresh[name] = model
        changed = {k: id(m) for k, m in fresh.items()} != {k: id(m) for k, m in current.items()}
        self.models = fresh  # one assignment: readers see the old table or this one
        self.properties = dict(properties)
        self.loaded = True
        return changed

    def drop_version(self, version: int) -> None:
        """Forget the models of ``version`` (deleted)."""
        self.models = {k: m for k, m in self.models.items() if _version_of(m) != str(version)}

    def missing(self, name: str) -> Exception:
        """Why alias ``name`` has no model here (the error to raise)."""
        if alias_version(self.properties, name) is None:
            known = ", ".join(aliases_in(self.properties)) or "none"
            return UnknownAliasError(
                f"no version carries the alias {name!r} (aliases: {known}); "
                f"set it with pf-admin alias {name} VERSION"
            )
        return NoModelError(
            f"the model of alias {name!r} (version {alias_version(self.properties, name)}) "
            "is not loaded; the server log says why"
        )
