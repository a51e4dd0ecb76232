"""What every built-in persister shares: parameters, metadata, version numbers, upgrades.

:class:`PersisterBase` checks the ``compress`` and ``pickler`` parameters,
annotates a model with its version, timestamp and library versions before
it is stored (and takes that back if storing fails), streams models through
:mod:`~pipeforge.persistence.chunks`, and runs ``upgrade()``: Palladium's
models first, then the upgrade steps, then the new ``db-version``. The
functions beside it are the small rules every persister follows (what a
version number is, how metadata becomes JSON, where a file is written
before it is moved into place).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, UnknownVersionError
from ..interfaces import ModelPersister, annotate
from .chunks import ChunkSink, dump_chunks, load_chunks
from .upgrade import UpgradeSteps, check_target, new_stamp

__all__ = [
    "PersisterBase",
    "library_versions",
    "warn_library_mismatch",
    "dump_chunks",
    "load_chunks",
    "DEFAULT_COMPRESS",
    "NO_ACTIVE",
    "db_version",
    "json_default",
    "as_version",
    "temp_name",
]

DEFAULT_COMPRESS = 1
PICKLERS = ("joblib", "pickle")
NO_ACTIVE = "no active model; fit one with pf-fit or activate one with pf-admin activate"


def db_version() -> str:
    """The store format version a fresh store records (pipeforge's own version)."""
    from .. import __version__

    return __version__


def library_versions() -> dict[str, str]:
    """The versions of the libraries a stored model depends on."""
    import platform

    import sklearn

    return {
        "pipeforge": db_version(),
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def warn_library_mismatch(metadata: dict, version: int) -> None:
    """Warn when ``metadata`` says the model was stored under other library versions."""
    stored = metadata.get("library_versions")
    if not isinstance(stored, dict):
        return
    running = library_versions()
    differ = sorted(k for k in stored if k in running and str(stored[k]) != running[k])
    if differ:
        then = ", ".join(f"{k} {stored[k]}" for k in differ)
        now = ", ".join(f"{k} {running[k]}" for k in differ)
        warnings.warn(
            f"model version {version} was stored with {then} but is loaded with {now}; "
            "it may behave differently or fail",
            UserWarning,
            stacklevel=3,
        )


def json_default(obj: Any) -> Any:
    """Make metadata JSON-safe: numpy scalars become numbers, the rest strings."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def as_version(version: Any) -> int | None:
    """``3``, ``'3'`` → ``3``; anything that is no version number → ``None``."""
    if isinstance(version, numbers.Integral) and not isinstance(version, bool):
        return int(version)
    if isinstance(version, str) and version.strip().isdigit():
        return int(version.strip())
    return None


def temp_name(target: str) -> str:
    """A fresh name next to ``target`` (same file system, so ``os.replace`` is atomic)."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}.{os.urandom(16).hex()}.tmp")


class PersisterBase(ModelPersister):
    """Validation, annotation, (de)serialising and upgrading for the built-in persisters."""

    upgrade_steps = UpgradeSteps()
    #: the constructor parameters every built-in persister has
    compress: int | bool
    pickler: str
    _level: int  # the zlib level ``compress`` stands for, set by _check_common

    def _check_common(self) -> None:
        name = type(self).__name__
        level = self.compress
        if isinstance(level, bool):
            level = DEFAULT_COMPRESS if level else 0
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise ConfigError(
                f"parameter 'compress' of {name} must be a zlib level from 0 (off) to 9 "
                f"or a bool; got {self.compress!r} instead"
            )
        if self.pickler not in PICKLERS:
            raise ConfigError(
                f"parameter 'pickler' of {name} must be one of {', '.join(PICKLERS)}; "
                f"got {self.pickler!r} instead"
            )
        self._level = level

    @staticmethod
    def _annotate(model, version: int) -> dict:
        current = dict(getattr(model, "__metadata__", None) or {})
        info = {
            "version": version,
            "train_timestamp": current.get("train_timestamp")
            or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "library_versions": library_versions(),
        }
        return dict(annotate(model, info))

    @staticmethod
    def _saved_metadata(model):
        saved = getattr(model, "__metadata__", None)
        return dict(saved) if saved is not None else None

    @staticmethod
    def _restore(model, saved) -> None:
        with contextlib.suppress(AttributeError):
            if saved is None:
                del model.__metadata__
            else:
                model.__metadata__ = saved

    def _dump(self, model, emit, chunk_size: int) -> ChunkSink:
        return dump_chunks(model, emit, chunk_size, self._level, self.pickler)

    @staticmethod
    def _load(chunks, compression: str, pickler: str):
        return load_chunks(chunks, compression, pickler)

    @staticmethod
    def _resolve(version, available) -> int:
        number = as_version(version)
        if number is None or number not in available:
            raise UnknownVersionError(version if number is None else number, sorted(available))
        return number

    def upgrade(self, from_version: str | None = None, to_version: str | None = None) -> list[str]:
        """Import models Palladium wrote here, run the upgrade steps, record the new ``db-version``.

        Returns what was done (the versions of the steps that ran, a line on
        each import). ``to_version`` may not be newer than the installed
        pipeforge, and the recorded version never goes down.
        """
        target = check_target(to_version, db_version())
        recorded = self.list_properties().get("db-version")
        ran = self._import_foreign()
        ran += self.upgrade_steps.run(self, from_version or recorded or "0", target)
        stamp = new_stamp(recorded, target)
        if stamp is not None:
            self._set_property("db-version", stamp)
        return ran

    def _import_foreign(self) -> list[str]:
        """Bring in models another program (Palladium) wrote into this store; see the persisters."""
        return []

    def _set_property(self, name: str, value: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _merged(current: dict, changes: dict) -> dict:
        """``current`` updated with ``changes`` (not the version), checked to be JSON."""
        import json

        if not isinstance(changes, dict):
            raise TypeError(f"metadata changes must be a dict; got {type(changes).__name__}")
        if "version" in changes and changes["version"] != current.get("version"):
            raise ValueError("a stored model's version cannot be changed")
        merged = {**current, **changes}
        json.dumps(merged, default=json_default)
        return merged
