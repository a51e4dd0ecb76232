"""Op versions: three hashes (major, minor, patch) that are stable everywhere.

A version is derived from an op's configuration: each versioned parameter
counts towards one level, and each level is the hash of the canonical JSON
of its parameters. Nothing depends on ``id()``, dict order or the process,
so two machines reading the same config compute the same version string.
Training moves one level on by hashing it together with a token that the
op store keeps, so a trained version is reproduced by reading it back.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["VersionType", "Version", "canonical_json", "version_from_fields"]

_HASH_LEN = 12


class VersionType(str, enum.Enum):  # noqa: UP042  (runs on Python 3.10 too)
    """Which part of a version a parameter (or a training run) changes."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"

    @classmethod
    def parse(cls, value: Any, *, what: str = "version level") -> VersionType:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(
                f"{what} must be one of 'major', 'minor', 'patch'; got {value!r} instead"
            ) from None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_LEN]


@dataclasses.dataclass(frozen=True)
class Version:
    """An op version; ``str()`` gives ``"<major>.<minor>.<patch>"`` (hex hashes)."""

    major: str
    minor: str
    patch: str

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @classmethod
    def parse(cls, text: str) -> Version:
        parts = str(text).split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"a version looks like 'major.minor.patch'; got {text!r} instead")
        return cls(*parts)

    def bump(self, level: VersionType | str, token: str) -> Version:
        """The version after a change at ``level`` identified by ``token``.

        A major change also renews minor and patch, a minor change renews
        patch, as in semantic versioning.
        """
        level = VersionType.parse(level)
        major, minor, patch = self.major, self.minor, self.patch
        if level is VersionType.MAJOR:
            major = _hash(f"{major}|{token}")
            minor = _hash(f"{minor}|{major}")
            patch = _hash(f"{patch}|{major}")
        elif level is VersionType.MINOR:
            minor = _hash(f"{minor}|{token}")
            patch = _hash(f"{patch}|{minor}")
        else:
            patch = _hash(f"{patch}|{token}")
        return Version(major, minor, patch)


def version_from_fields(fields: Mapping[str, tuple[Any, VersionType | str]]) -> Version:
    """The version of a configuration: ``{name: (value, level)}`` → :class:`Version`.

    Major fields feed all three levels and minor fields feed minor and
    patch, so a major change always shows in every part of the string.
    """
    levels: dict[VersionType, dict[str, Any]] = {t: {} for t in VersionType}
    for name, (value, level) in fields.items():
        levels[VersionType.parse(level, what=f"version level of {name!r}")][name] = value
    major = levels[VersionType.MAJOR]
    minor = {**major, **levels[VersionType.MINOR]}
    patch = {**minor, **levels[VersionType.PATCH]}
    return Version(
        _hash("major" + canonical_json(major)),
        _hash("minor" + canonical_json(minor)),
        _hash("patch" + canonical_json(patch)),
    )


def canonical_json(value: Any) -> str:
    """JSON text of ``value`` that is the same in every process (sorted, no ids)."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def _dotted(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module else name


def _canonical(value: Any, depth: int = 0) -> Any:
    if depth > 50:
        return "<deep>"
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else value
    if isinstance(value, enum.Enum):
        return {"__enum__": _dotted(type(value)), "value": _canonical(value.value, depth + 1)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v, depth + 1) for v in value), key=json.dumps)
    if inspect.isclass(value) or inspect.isroutine(value):
        return {"__callable__": _dotted(value)}
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return _canonical(tolist(), depth + 1)
    get_params = getattr(value, "get_params", None)
    if callable(get_params):  # scikit-learn estimators, nested ones included
        try:
            params = get_params(deep=False)
        except TypeError:
            params = get_params()
        return {"__class__": _dotted(type(value)), "params": _canonical(params, depth + 1)}
    return {"__class__": _dotted(type(value)), "params": _canonical(_init_params(value), depth + 1)}


def _init_params(obj: Any) -> dict[str, Any]:
    """The constructor arguments of ``obj``, read back from its attributes.

    Components store their arguments under the same names (scikit-learn
    style); anything else falls back to the public attributes.
    """
    try:
        signature = inspect.signature(type(obj).__init__)
    except (TypeError, ValueError):
        signature = None
    params: dict[str, Any] = {}
    if signature is not None:
        for name, parameter in signature.parameters.items():
            if name == "self" or parameter.kind is parameter.VAR_POSITIONAL:
                continue
            if hasattr(obj, name):
                params[name] = getattr(obj, name)
    if not params:
        params = {k: v for k, v in getattr(obj, "__dict__", {}).items() if not k.startswith("_")}
    return params
