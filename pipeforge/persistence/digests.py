"""``pf-upgrade``'s last step: record a digest for every stored model that has none.

Stores written before digests were recorded (and models imported from
Palladium's stores) carry none. This step hashes each such model's stored
bytes (without loading it) and records the digest. With a model key set
(see :mod:`~pipeforge.persistence.integrity`) it records HMACs instead,
and also signs models recorded with a plain SHA-256 once that digest is
found to match: whoever runs it with the key vouches for the store as it
is. A model whose bytes do not match the digest it records is left as it
is (and refused when loaded). Running it again finds nothing to do.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from .integrity import DIGEST_KEY, Signer, model_key

if TYPE_CHECKING:
    from .storage import PersisterBase

__all__ = ["add_digests"]


def _versions(numbers: list[int]) -> str:
    return ", ".join(str(v) for v in numbers)


def add_digests(persister: PersisterBase) -> list[str]:
    """Record the digests ``persister``'s models lack; return what was done (lines)."""
    from .storage import SignedChange

    key = model_key()
    added: list[int] = []
    mismatched: list[int] = []
    for entry in persister.list_models():
        version = int(entry["version"])
        recorded = entry.get(DIGEST_KEY)
        if recorded is not None and (key is None or str(recorded).startswith("hmac-sha256:")):
            continue  # checked when loaded; nothing this step could do better
        with persister._stored(version) as (fmt, compression, chunks):
            signer = Signer(key, version, fmt, compression)
            plain = Signer(None, version, fmt, compression)
            for chunk in chunks:
                signer.update(chunk)
                plain.update(chunk)
        if recorded is not None and not hmac.compare_digest(plain.digest(), str(recorded)):
            mismatched.append(version)
            continue
        persister._record_digests({version: SignedChange({DIGEST_KEY: signer.digest()})})
        added.append(version)
    lines = []
    if added:
        if key is not None:
            lines.append(f"signed model versions {_versions(added)} with the model key (HMAC)")
        else:
            lines.append(f"added SHA-256 digests to model versions {_versions(added)}")
    if mismatched:
        lines.append(
            f"model versions {_versions(mismatched)} do not match their recorded digest: left "
            "as they are and refused when loaded (delete them, or fit them again)"
        )
    return lines
