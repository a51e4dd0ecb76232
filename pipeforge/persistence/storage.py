"""What every built-in persister shares: parameters, metadata, version numbers, upgrades.

:class:`PersisterBase` checks the ``compress``, ``pickler``, ``format``,
``trusted_types`` and ``allow_pickle`` parameters, annotates a model with
its version, timestamp and library versions before it is stored (and takes
that back if storing fails), streams models through
:mod:`~pipeforge.persistence.chunks` (pickle, joblib or skops), records the
digest of the stored bytes and checks it before loading (see
:mod:`~pipeforge.persistence.integrity`), and runs ``upgrade()``:
Palladium's models first, then the upgrade steps, then the digests of
models stored without one, then the new ``db-version``. The
functions beside it are the small rules every persister follows (what a
version number is, how metadata becomes JSON, where a file is written
before it is moved into place).
"""

from __future__ import annotations

import contextlib
import gzip
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, UnknownVersionError, UntrustedModelError
from ..interfaces import ModelPersister, annotate
from .chunks import ChunkSink, dump_chunks, load_chunks, serialize
from .integrity import (
    DIGEST_KEY,
    HashingWriter,
    Signer,
    admit,
    checked_copy,
    model_key,
    read_pieces,
)
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
    "FORMATS",
    "Stored",
    "SignedChange",
]

DEFAULT_COMPRESS = 1
PICKLERS = ("joblib", "pickle")
FORMATS = ("pickle", "skops")
#: what a persister's ``_stored(version)`` yields: (format, compression, chunks of stored bytes)
Stored = tuple[str, str, Iterable[bytes]]
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
    #: ``"skops"`` stores models in skops format; ``"pickle"`` with ``pickler``
    format: str = "pickle"
    #: type names skops may build beyond its own trusted ones
    trusted_types: list[str] | None = None
    #: whether pickled models are loaded; ``None``: unless ``format`` is ``"skops"``
    allow_pickle: bool | None = None
    _level: int  # the zlib level ``compress`` stands for, set by _check_common

    def _check_common(self) -> None:
        from .skops_format import check_trusted_types

        name = type(self).__name__
        if self.format not in FORMATS:
            raise ConfigError(
                f"parameter 'format' of {name} must be one of {', '.join(FORMATS)}; "
                f"got {self.format!r} instead"
            )
        check_trusted_types(self.trusted_types, name)
        if self.allow_pickle is not None and not isinstance(self.allow_pickle, bool):
            raise ConfigError(
                f"parameter 'allow_pickle' of {name} must be true or false; "
                f"got {self.allow_pickle!r} instead"
            )
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
        if isinstance(getattr(model, "__metadata__", None), dict):
            for stale in (DIGEST_KEY, "model_format"):  # what another stored copy recorded
                model.__metadata__.pop(stale, None)
                current.pop(stale, None)
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

    def _format(self) -> str:
        """The format models are written in: ``skops``, or the ``pickler``."""
        return "skops" if self.format == "skops" else self.pickler

    def _trusted(self) -> list[str]:
        return list(self.trusted_types or [])

    def _dump(self, model, emit, chunk_size: int, version: int | None = None) -> ChunkSink:
        """Serialize ``model`` into chunks for ``emit``; with ``version``, ``sink.digest`` is set."""
        compression = "zlib" if self._level else "none"
        if version is None:
            return dump_chunks(model, emit, chunk_size, self._level, self._format())
        signer = Signer(model_key(), version, self._format(), compression)

        def hashed(index: int, chunk: bytes) -> Any:
            signer.update(chunk)
            return emit(index, chunk)

        sink = dump_chunks(model, hashed, chunk_size, self._level, self._format(), self._trusted())
        sink.digest = signer.digest()
        return sink

    def _dump_gzip(self, model, handle, version: int) -> str:
        """Write ``model`` gzipped to the binary ``handle``; return the digest of what was written."""
        signer = Signer(model_key(), version, self._format(), "gzip")
        level = self._level or 0
        with gzip.GzipFile(
            fileobj=HashingWriter(handle, signer), mode="wb", compresslevel=level
        ) as packed:
            serialize(model, packed, self._format(), self._trusted())
        return signer.digest()

    @staticmethod
    def _record_digest(model, metadata: dict, digest: str | None) -> None:
        """Note the stored copy's ``digest`` in ``metadata`` and on ``model``."""
        if digest is not None:
            metadata[DIGEST_KEY] = digest
            annotate(model, {DIGEST_KEY: digest})

    def _load(
        self,
        chunks: Iterable[bytes],
        compression: str,
        pickler: str,
        version: int | None = None,
        metadata: dict | None = None,
    ) -> Any:
        """The model from its stored ``chunks``, its digest checked first (with a ``version``)."""
        if version is None:
            return load_chunks(chunks, compression, pickler, self._trusted())
        self._refuse_pickle(pickler, version)
        key = model_key()
        recorded = (metadata or {}).get(DIGEST_KEY)
        if admit(recorded, key, version) and isinstance(recorded, str):
            signer = Signer(key, version, pickler, compression)
            with checked_copy(chunks, signer, recorded, version) as copy:
                model = load_chunks(
                    read_pieces(copy), compression, pickler, self._trusted(), version
                )
            annotate(model, {DIGEST_KEY: recorded})
            return model
        return load_chunks(chunks, compression, pickler, self._trusted(), version)

    def _refuse_pickle(self, fmt: str, version: int) -> None:
        allowed = self.allow_pickle if self.allow_pickle is not None else self.format != "skops"
        if fmt != "skops" and not allowed:
            raise UntrustedModelError(
                f"model version {version} is stored as a {fmt} pickle, and this store loads "
                f"skops files only (format: skops); refused, not loaded (fit it again, or set "
                f"allow_pickle: true on the persister)"
            )

    def _record_digests(self, changes: dict[int, SignedChange]) -> None:
        """Record the digests ``pf-upgrade`` computed, ``{version: SignedChange}``."""
        for version, change in changes.items():
            self.update_metadata(version, change)

    @contextlib.contextmanager
    def _stored(self, version: int) -> Iterator[Stored]:
        """The stored bytes of ``version``: (format, compression, chunks); see the persisters."""
        raise NotImplementedError
        yield  # pragma: no cover

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
        from .digests import add_digests

        ran += add_digests(self)
        stamp = new_stamp(recorded, target)
        if stamp is not None:
            self._set_property("db-version", stamp)
        return ran

    def _import_foreign(self) -> list[str]:
        """Bring in models another program (Palladium) wrote into this store; see the persisters."""
        return []

    def _set_property(self, name: str, value: str | None, version: int | None = None) -> None:
        raise NotImplementedError

    def set_property(self, name: str, value: str | None, *, version: int | None = None) -> None:
        """Set the store property ``name`` (``None`` removes it) in one write.

        With ``version``, only while that version is stored (else
        :class:`~pipeforge.errors.UnknownVersionError`): aliases and traffic
        splits are kept this way (:mod:`pipeforge.release.aliases`).
        """
        self._set_property(name, value, version)

    @staticmethod
    def _merged(current: dict, changes: dict) -> dict:
        """``current`` updated with ``changes`` (not the version), checked to be JSON."""
        import json

        if not isinstance(changes, dict):
            raise TypeError(f"metadata changes must be a dict; got {type(changes).__name__}")
        if "version" in changes and changes["version"] != current.get("version"):
            raise ValueError("a stored model's version cannot be changed")
        if DIGEST_KEY in changes and not isinstance(changes, SignedChange):
            raise ValueError(
                f"a stored model's {DIGEST_KEY} cannot be changed (pf-upgrade adds it)"
            )
        merged = {**current, **changes}
        json.dumps(merged, default=json_default)
        return merged


class SignedChange(dict):
    """Metadata changes that may set ``model_digest`` (only ``pf-upgrade`` makes them)."""
