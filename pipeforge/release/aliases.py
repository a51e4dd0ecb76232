"""Aliases, tags and traffic splits, kept with the models in the model store.

An alias names one stored version (``champion`` -> 3); moving it is one
write of one store property, so every reader sees the old version or the
new one, never a mix. The active version is the alias ``active`` (the
store's ``active-model`` property), so everything that reads the active
model keeps working. The store's properties hold:

- ``active-model``: the version of the alias ``active``;
- ``alias:<name>``: the version of any other alias;
- ``traffic:<entry point>``: a predict service's split, as JSON
  (``{"champion": 90, "challenger": 10}``); it wins over the config's.

Tags are free ``key=value`` notes on one version, kept in its metadata
under ``tags``. Deleting a version drops the aliases that named it.

Every function takes the persister (any ``ModelPersister``; moving an alias
needs ``set_property``, which the built-in persisters have).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import PersistenceError, RequestError, UnknownAliasError

__all__ = [
    "ACTIVE",
    "ACTIVE_PROPERTY",
    "ALIAS_PREFIX",
    "TRAFFIC_PREFIX",
    "alias_problem",
    "alias_property",
    "aliases_in",
    "aliases",
    "alias_version",
    "pointing_at",
    "resolve_version",
    "set_alias",
    "delete_alias",
    "read_alias",
    "tags_of",
    "set_tags",
    "weights_problem",
    "traffic_in",
    "set_traffic",
    "release_listing",
]

ACTIVE = "active"  #: the alias every existing command and route means
ACTIVE_PROPERTY = "active-model"
ALIAS_PREFIX = "alias:"
TRAFFIC_PREFIX = "traffic:"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}")
_TAG_VALUE_LIMIT = 500


def alias_problem(name: Any) -> str | None:
    """Why ``name`` cannot be an alias (``None``: it can).

    An alias starts with a letter and has up to 64 letters, digits, ``_``,
    ``.`` and ``-``; so it is never a version number.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return (
            "an alias starts with a letter and has up to 64 letters, digits, '_', '.' or '-'; "
            f"got {name!r}"
        )
    return None


def _checked(name: Any) -> str:
    problem = alias_problem(name)
    if problem:
        raise RequestError(problem)
    return name


def alias_property(name: str) -> str:
    """The store property that holds alias ``name``'s version."""
    return ACTIVE_PROPERTY if name == ACTIVE else ALIAS_PREFIX + name


def _number(text: Any) -> int | None:
    text = str(text).strip()
    return int(text) if text.isdigit() else None


def aliases_in(properties: Mapping[str, Any]) -> dict[str, int]:
    """``{alias: version}`` from the store's properties, ``active`` first, the rest by name."""
    found: dict[str, int] = {}
    active = _number(properties.get(ACTIVE_PROPERTY, ""))
    if active is not None:
        found[ACTIVE] = active
    for key in sorted(properties):
        if key.startswith(ALIAS_PREFIX):
            number = _number(properties[key])
            if number is not None:
                found[key[len(ALIAS_PREFIX) :]] = number
    return found


def aliases(persister: Any) -> dict[str, int]:
    """``{alias: version}`` of the store (one read of its properties)."""
    return aliases_in(persister.list_properties())


def alias_version(properties: Mapping[str, Any], name: str) -> int | None:
    """The version alias ``name`` names in ``properties``, or ``None``."""
    return _number(properties.get(alias_property(name), ""))


def pointing_at(properties: Mapping[str, Any], version: int) -> list[str]:
    """The property names (``active-model``, ``alias:*``) that name ``version``."""
    text = str(version)
    return [
        key
        for key, value in properties.items()
        if (key == ACTIVE_PROPERTY or key.startswith(ALIAS_PREFIX)) and str(value).strip() == text
    ]


def _unknown(name: str, properties: Mapping[str, Any]) -> UnknownAliasError:
    known = ", ".join(aliases_in(properties)) or "none"
    return UnknownAliasError(
        f"no version carries the alias {name!r} (aliases: {known}); "
        f"set it with pf-admin alias {name} VERSION"
    )


def resolve_version(persister: Any, text: Any) -> int:
    """The version ``text`` means: a number (``"3"``), ``active`` or another alias.

    Raises :class:`~pipeforge.errors.UnknownAliasError` for an alias no
    version carries (a number is returned as it is: reading it says whether
    it is stored).
    """
    number = text if isinstance(text, int) and not isinstance(text, bool) else _number(text)
    if number is not None:
        return number
    name = _checked(str(text).strip())
    properties = persister.list_properties()
    version = alias_version(properties, name)
    if version is None:
        raise _unknown(name, properties)
    return version


def _setter(persister: Any) -> Any:
    setter = getattr(persister, "set_property", None)
    if not callable(setter):
        raise PersistenceError(
            f"{type(persister).__name__} keeps no aliases or traffic splits (it has no "
            "set_property); use a Database, File or FileLike model persister"
        )
    return setter


def set_alias(persister: Any, name: str, version: int | str) -> int:
    """Point alias ``name`` at ``version`` (atomically); return the version.

    ``active`` is the active model: setting it activates the version.
    An unknown version raises :class:`~pipeforge.errors.UnknownVersionError`.
    """
    _checked(name)
    number = resolve_version(persister, version)
    if name == ACTIVE:
        persister.activate(number)
    else:
        _setter(persister)(alias_property(name), str(number), version=number)
    return number


def delete_alias(persister: Any, name: str) -> int:
    """Remove alias ``name``; return the version it named.

    The alias ``active`` cannot be removed (activate another version, or
    delete the version with force).
    """
    _checked(name)
    if name == ACTIVE:
        raise RequestError("the alias 'active' cannot be removed: activate another version instead")
    properties = persister.list_properties()
    version = alias_version(properties, name)
    if version is None:
        raise _unknown(name, properties)
    _setter(persister)(alias_property(name), None)
    return version


def read_alias(persister: Any, name: str) -> Any:
    """The model alias ``name`` names: from a model cache that holds it, else read from the store."""
    cached = getattr(persister, "read_alias", None)
    if callable(cached):
        return cached(name)
    if name == ACTIVE:
        return persister.read()
    properties = persister.list_properties()
    version = alias_version(properties, name)
    if version is None:
        raise _unknown(name, properties)
    return persister.read(version)


# -- tags ----------------------------------------------------------------------------


def tags_of(metadata: Mapping[str, Any]) -> dict[str, str]:
    """A version's tags (``{}`` when it has none)."""
    tags = metadata.get("tags")
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


def set_tags(
    persister: Any, version: int | str, changes: Mapping[str, str | None]
) -> dict[str, str]:
    """Set (a value) or remove (``None``) tags of ``version``; return its tags.

    Keys have up to 64 letters, digits and ``_ . : / -``; values are text
    of up to 500 characters.
    """
    for key, value in changes.items():
        if not isinstance(key, str) or not _TAG.fullmatch(key):
            raise RequestError(
                f"a tag key has up to 64 letters, digits, '_', '.', ':', '/' or '-'; got {key!r}"
            )
        if value is not None and (not isinstance(value, str) or len(value) > _TAG_VALUE_LIMIT):
            raise RequestError(
                f"the value of tag {key!r} must be text of at most {_TAG_VALUE_LIMIT} "
                f"characters; got {value!r:.60}"
            )
    number = resolve_version(persister, version)
    current = next((m for m in persister.list_models() if m.get("version") == number), None)
    if current is None:
        from ..errors import UnknownVersionError

        raise UnknownVersionError(number, [m.get("version") for m in persister.list_models()])
    tags = tags_of(current)
    for key, value in changes.items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    persister.update_metadata(number, {"tags": dict(sorted(tags.items()))})
    return tags


# -- traffic -------------------------------------------------------------------------


def weights_problem(weights: Any) -> str | None:
    """Why ``weights`` is no traffic split (``None``: it is one).

    A split maps aliases to numbers of at least 0, at least one above 0.
    """
    if not isinstance(weights, Mapping) or not weights:
        return f"a traffic split maps aliases to weights, e.g. {{champion: 90, challenger: 10}}; got {weights!r}"
    for name, weight in weights.items():
        problem = alias_problem(name)
        if problem:
            return problem
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            return f"the weight of {name!r} must be a number of at least 0; got {weight!r}"
    if not any(w > 0 for w in weights.values()):
        return "at least one weight of a traffic split must be above 0"
    return None


def traffic_in(properties: Mapping[str, Any], entry_point: str) -> dict[str, float] | None:
    """The split the store holds for the service at ``entry_point``, or ``None``."""
    text = properties.get(TRAFFIC_PREFIX + entry_point)
    if not text:
        return None
    try:
        weights = json.loads(text)
    except ValueError:
        return None
    if weights_problem(weights):
        return None
    return {str(k): float(v) for k, v in weights.items()}


def set_traffic(
    persister: Any, entry_point: str, weights: Mapping[str, float] | None
) -> dict[str, float] | None:
    """Store the split of the service at ``entry_point`` (``None``: back to the config's).

    Every alias of the split must be set now
    (:class:`~pipeforge.errors.UnknownAliasError` otherwise).
    """
    if not isinstance(entry_point, str) or not entry_point.startswith("/"):
        raise RequestError(
            f"a service is named by its entry point, e.g. /predict; got {entry_point!r}"
        )
    setter = _setter(persister)
    if weights is None:
        setter(TRAFFIC_PREFIX + entry_point, None)
        return None
    problem = weights_problem(weights)
    if problem:
        raise RequestError(problem)
    properties = persister.list_properties()
    for name in weights:
        if alias_version(properties, name) is None:
            raise _unknown(name, properties)
    split = {name: float(weights[name]) for name in sorted(weights)}
    setter(TRAFFIC_PREFIX + entry_point, json.dumps(split))
    return split


def release_listing(models: list[dict], properties: Mapping[str, Any]) -> dict[str, Any]:
    """What ``/list`` and ``pf-list --json`` add: aliases, each model's aliases, the splits.

    Returns ``{"aliases": {name: version}, "traffic": {entry point: split},
    "by_version": {version: [alias, ...]}}``.
    """
    found = aliases_in(properties)
    by_version: dict[int, list[str]] = {}
    for name, version in found.items():
        by_version.setdefault(version, []).append(name)
    traffic = {
        key[len(TRAFFIC_PREFIX) :]: split
        for key in sorted(properties)
        if key.startswith(TRAFFIC_PREFIX)
        and (split := traffic_in(properties, key[len(TRAFFIC_PREFIX) :])) is not None
    }
    return {"aliases": found, "traffic": traffic, "by_version": by_version}
