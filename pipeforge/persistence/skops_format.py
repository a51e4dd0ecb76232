"""Models in skops format: scikit-learn estimators and pipelines stored without pickle.

skops (``pip install pipeforge[skops]``) writes a model as a zip of JSON
and numpy arrays and, when loading, builds only the types it trusts:
scikit-learn's own, numpy's, and the names the persister's
``trusted_types`` add. A stored model holding any other type is refused
with :class:`~pipeforge.errors.UntrustedModelError` naming the types, and
nothing of it is built. Writing checks the same list, so a model the
server could not load is refused when it is fitted, not when it is served.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

from ..errors import ConfigError, ModelWriteError, UntrustedModelError

__all__ = ["dump_skops", "load_skops", "check_trusted_types"]

_SPOOL = 64 * 1024 * 1024


def _skops_io() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ConfigError(
            "the model store is set to format 'skops', but skops is not installed; "
            "install it with: pip install 'pipeforge[skops]'"
        ) from None
    return sio


def check_trusted_types(value: Any, owner: str) -> list[str]:
    """``trusted_types`` as a list of dotted type names, or a ConfigError naming ``owner``."""
    if value is None:
        return []
    if isinstance(value, str) or not all(isinstance(n, str) and "." in n for n in value):
        raise ConfigError(
            f"parameter 'trusted_types' of {owner} must be a list of dotted type names such "
            f"as ['sklearn.tree._tree.Tree']; got {value!r} instead"
        )
    return list(value)


def dump_skops(obj: Any, stream: Any, trusted: list[str]) -> None:
    """Write ``obj`` in skops format to ``stream``; refuse one holding types not trusted."""
    sio = _skops_io()
    data = sio.dumps(obj)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted))
    if untrusted:
        raise ModelWriteError(
            f"the model holds types skops does not trust: {', '.join(untrusted)}; add them "
            "to the persister's 'trusted_types' if you trust them (the server will build "
            "them when it loads the model), or store the model as a pickle"
        )
    stream.write(data)


def load_skops(reader: IO[bytes], trusted: list[str], version: int | None = None) -> Any:
    """Build the model a skops file holds, trusting ``trusted`` beyond skops' defaults."""
    sio = _skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as copy:  # zip needs to seek
        while piece := reader.read(1024 * 1024):
            copy.write(piece)
        copy.seek(0)
        try:
            return sio.load(copy, trusted=list(trusted))
        except UntrustedTypesFoundException:
            copy.seek(0)
            untrusted = set(sio.get_untrusted_types(data=copy.read())) - set(trusted)
            names = ", ".join(repr(name) for name in sorted(untrusted))
            which = f"model version {version}" if version is not None else "the model"
            raise UntrustedModelError(
                f"{which} holds types that are not trusted ({names}); refused, not "
                "loaded; add them to the persister's 'trusted_types' if you trust them"
            ) from None
