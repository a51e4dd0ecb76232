"""Checked models: a digest recorded with every stored model and checked before it is loaded.

When a persister stores a model it hashes the bytes it stores (after
compression, exactly as they lie in the store) together with the model's
version, format and compression, and records the result in the model's
metadata under ``model_digest``: ``"sha256:<hex>"``, or
``"hmac-sha256:<hex>"`` when a model key is set. Before a model is loaded
its stored bytes are copied (into memory, or a temporary file past 64 MiB)
while they are hashed, the digest is compared, and only that checked copy
is unpickled, so nothing that changes the store meanwhile is read.

The model key comes from the environment: ``PIPEFORGE_MODEL_KEY`` (the key
itself) or ``PIPEFORGE_MODEL_KEY_FILE`` (a file holding it). What is loaded:

================  ==================  =====================================
model key         recorded digest     what happens
================  ==================  =====================================
none              ``sha256:``         checked, then loaded
none              ``hmac-sha256:``    refused (set the key)
none              none (older store)  loaded unchecked, with a warning;
                                      ``pf-upgrade`` adds the digests
set               ``hmac-sha256:``    checked with the key, then loaded
set               ``sha256:``         refused (written without the key)
set               none (older store)  refused; ``pf-upgrade`` with the key
                                      signs the store's models
================  ==================  =====================================

A refusal is an :class:`~pipeforge.errors.UntrustedModelError`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from ..errors import ConfigError, UntrustedModelError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "DIGEST_KEY",
    "model_key",
    "Signer",
    "HashingWriter",
    "admit",
    "checked_copy",
    "read_pieces",
]

logger = logging.getLogger(__name__)

KEY_ENV = "PIPEFORGE_MODEL_KEY"
KEY_FILE_ENV = "PIPEFORGE_MODEL_KEY_FILE"
#: the metadata entry holding a stored model's digest
DIGEST_KEY = "model_digest"
_SPOOL = 64 * 1024 * 1024  # a checked copy larger than this goes to a temporary file
_PIECE = 1024 * 1024


def model_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The model key from ``PIPEFORGE_MODEL_KEY`` or the file ``PIPEFORGE_MODEL_KEY_FILE`` names.

    ``None`` when neither is set. Both set, an empty key or an unreadable
    file are :class:`~pipeforge.errors.ConfigError`.
    """
    env = os.environ if environ is None else environ
    value, path = env.get(KEY_ENV), env.get(KEY_FILE_ENV)
    if value and path:
        raise ConfigError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if path:
        try:
            with open(path, "rb") as handle:
                key = handle.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"{KEY_FILE_ENV} names {path}, which cannot be read: {exc.strerror}"
            ) from None
        if not key:
            raise ConfigError(f"{KEY_FILE_ENV} names {path}, which holds no key")
        return key
    if value is None or value == "":
        return None
    return value.encode("utf-8")


class Signer:
    """The digest of one stored model: fed the stored bytes, in order, through :meth:`update`."""

    def __init__(self, key: bytes | None, version: int, fmt: str, compression: str):
        head = f"pipeforge-model-digest 1\n{int(version)}\n{fmt}\n{compression}\n".encode()
        if key is None:
            self.algorithm = "sha256"
            self._hash: Any = hashlib.sha256(head)
        else:
            self.algorithm = "hmac-sha256"
            self._hash = hmac.new(key, head, hashlib.sha256)

    def update(self, data: Any) -> None:
        self._hash.update(data)

    def digest(self) -> str:
        """``"<algorithm>:<hex>"``, as recorded in the metadata."""
        return f"{self.algorithm}:{self._hash.hexdigest()}"


class HashingWriter:
    """A binary stream that hands every write to ``target`` and to ``signer``."""

    def __init__(self, target: Any, signer: Signer):
        self._target = target
        self._signer = signer

    def write(self, data: Any) -> int:
        self._signer.update(data)
        self._target.write(data)
        return len(memoryview(data))

    def flush(self) -> None:
        flush = getattr(self._target, "flush", None)
        if flush is not None:
            flush()


def admit(recorded: Any, key: bytes | None, version: int) -> bool:
    """Whether model ``version`` with digest ``recorded`` may be read; ``False``: read unchecked.

    Raises :class:`~pipeforge.errors.UntrustedModelError` for the
    combinations the module's table refuses.
    """
    if recorded is not None and (
        not isinstance(recorded, str) or recorded.split(":", 1)[0] not in ("sha256", "hmac-sha256")
    ):
        raise UntrustedModelError(
            f"model version {version} records a digest pipeforge does not know "
            f"({str(recorded)[:40]!r}); refused, not loaded"
        )
    if key is not None:
        if recorded is None:
            raise UntrustedModelError(
                f"model version {version} carries no digest and a model key ({KEY_ENV}) is set; "
                "refused, not loaded (run pf-upgrade with the key to sign the models a store "
                "already holds, once you trust them)"
            )
        if not recorded.startswith("hmac-sha256:"):
            raise UntrustedModelError(
                f"model version {version} was stored without the model key ({KEY_ENV}); "
                "refused, not loaded (fit it again with the key set, or sign the store's "
                "models with pf-upgrade once you trust them)"
            )
        return True
    if recorded is None:
        logger.warning(
            "model version %s carries no digest (stored before digests were recorded); "
            "loading it unchecked; run pf-upgrade to add the digests",
            version,
        )
        return False
    if recorded.startswith("hmac-sha256:"):
        raise UntrustedModelError(
            f"model version {version} was signed with a model key; set {KEY_ENV} "
            f"(or {KEY_FILE_ENV}) to load it; refused, not loaded"
        )
    return True


def checked_copy(chunks: Iterable[Any], signer: Signer, recorded: str, version: int) -> IO[bytes]:
    """A copy of the stored ``chunks`` whose digest matches ``recorded``, rewound; else refused.

    The copy is what gets loaded, so the store changing after the check
    changes nothing. Raises :class:`~pipeforge.errors.UntrustedModelError`
    on a mismatch (the copy is discarded).
    """
    copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (returned open)
    try:
        for chunk in chunks:
            signer.update(chunk)
            copy.write(chunk)
        if not hmac.compare_digest(signer.digest(), recorded):
            what = "HMAC" if signer.algorithm == "hmac-sha256" else "SHA-256 digest"
            raise UntrustedModelError(
                f"model version {version} does not match its recorded {what}: its stored "
                "bytes were changed, or it was written with another model key; refused, "
                "not loaded"
            )
        copy.seek(0)
        return copy
    except BaseException:
        copy.close()
        raise


def read_pieces(handle: IO[bytes]) -> Iterator[bytes]:
    """The contents of ``handle`` in pieces of a MiB."""
    return iter(lambda: handle.read(_PIECE), b"")
