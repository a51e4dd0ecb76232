"""Caching a function's results on disk (Palladium's ``palladium.cache``).

Meant for development: wrap a slow dataset loader (a database query) so
that repeated runs with the same arguments read a local pickle instead::

    from pipeforge.cache import DiskCache

    @DiskCache()
    def load_orders(since): ...

Delete the cache files (see ``filename_tmpl``) when the data or the
function changes; nothing here notices that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from ..errors import ConfigError
from ..persistence.storage import temp_name

__all__ = ["AbstractCache", "DiskCache", "PickleDiskCache", "compute_key_attrs"]


class AbstractCache:
    """A decorator that caches a function's results by key in ``self.cache`` (a dict-like).

    ``compute_key(*args, **kwargs)`` makes the key (default: the arguments);
    ``ignore`` (a bool, or a function returning one) switches caching off.
    """

    cache: Any = None

    def __init__(
        self, compute_key: Callable | None = None, ignore: bool | Callable = False
    ) -> None:
        self.compute_key = compute_key
        self.ignore = ignore

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        self.func = func

        @wraps(func)
        def cached(*args, **kwargs):
            if self.ignore() if callable(self.ignore) else self.ignore:
                return func(*args, **kwargs)
            if self.compute_key is not None:
                key = self.compute_key(*args, **kwargs)
            else:
                key = (args, tuple(sorted(kwargs.items())))
            try:
                return self.cache[key]
            except KeyError:
                pass
            value = func(*args, **kwargs)
            self.cache[key] = value
            return value

        cached.__cache__ = self  # type: ignore[attr-defined]
        return cached


class DiskCache(AbstractCache):
    """Results pickled (with joblib) to ``filename_tmpl``, which must contain ``{key}``.

    ``{module}`` and ``{func}`` in the template are the function's module and name.
    """

    filename_tmpl = os.path.join(tempfile.gettempdir(), "pld", "cache-{module}.{func}-{key}.pickle")

    def __init__(self, *args: Any, filename_tmpl: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if filename_tmpl is not None:
            self.filename_tmpl = filename_tmpl

    @property
    def cache(self) -> DiskCache:
        return self

    def _filename(self, key) -> str:
        if "{key}" not in self.filename_tmpl:
            raise ConfigError(
                f"parameter 'filename_tmpl' of {type(self).__name__} must contain '{{key}}'; "
                f"got {self.filename_tmpl!r} instead"
            )
        digest = hashlib.sha1(str(key).encode("utf-8")).hexdigest()[:8]
        return self.filename_tmpl.format(
            module=self.func.__module__, func=self.func.__name__, key=digest
        )

    def load(self, filename: str) -> Any:
        import joblib

        return joblib.load(filename)

    def dump(self, value: Any, filename: str) -> None:
        import joblib

        joblib.dump(value, filename)

    def __getitem__(self, key: Any) -> Any:
        filename = self._filename(key)
        if not os.path.exists(filename):
            raise KeyError(key)
        return self.load(filename)

    def __setitem__(self, key: Any, value: Any) -> None:
        filename = self._filename(key)
        os.makedirs(os.path.dirname(filename) or ".", exist_ok=True)
        tmp = temp_name(filename)
        try:
            self.dump(value, tmp)
            os.replace(tmp, filename)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class PickleDiskCache(DiskCache):
    """A :class:`DiskCache` that uses the standard pickle instead of joblib."""

    def load(self, filename: str) -> Any:
        with open(filename, "rb") as handle:
            return pickle.load(handle)

    def dump(self, value: Any, filename: str) -> None:
        with open(filename, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def compute_key_attrs(attrs: Iterable[str]) -> Callable[..., tuple]:
    """A ``compute_key`` for methods: the key is the values of ``self``'s ``attrs``."""

    def compute_key(self, *args, **kwargs):
        return tuple(getattr(self, attr) for attr in attrs)

    return compute_key
