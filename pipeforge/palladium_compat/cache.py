"""Caching a function's results on disk (Palladium's ``palladium.cache``).

Meant for development: wrap a slow dataset loader (a database query) so
that repeated runs with the same arguments read a local pickle instead::

    from pipeforge.cache import DiskCache

    @DiskCache()
    def load_orders(since): ...

Delete the cache files (see ``filename_tmpl``) when the data or the
function changes; nothing here notices that.

Loading a pickle runs code, so a cache reads only files nobody else could
have put there. By default they live in a folder of the user's own under
the temp dir, ``pipeforge-cache-<uid>``, created with mode 0700; a folder of
that name that is not a folder of the user's own, or that others may open,
is refused (:class:`~pipeforge.errors.ConfigError`), never read. A folder
given with ``filename_tmpl`` must belong to the user and must not be
writable by every user (such as the temp dir itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import tempfile
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from ..errors import ConfigError
from ..persistence.storage import temp_name

__all__ = ["AbstractCache", "DiskCache", "PickleDiskCache", "compute_key_attrs", "DEFAULT_FOLDER"]

#: Where cache files go by default: a folder of this user's own (mode 0700) in the temp dir
DEFAULT_FOLDER = os.path.join(
    tempfile.gettempdir(), f"pipeforge-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
)


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

    ``{module}`` and ``{func}`` in the template are the function's module and
    name. The default folder is :data:`DEFAULT_FOLDER`, private to the user;
    see the module docstring for the folders a cache refuses.
    """

    filename_tmpl = os.path.join(DEFAULT_FOLDER, "cache-{module}.{func}-{key}.pickle")

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

    def _folder(self, filename: str, *, create: bool) -> bool:
        """Check the folder of ``filename`` (making the default one); whether it exists."""
        folder = os.path.dirname(os.path.abspath(filename))
        default = os.path.abspath(folder) == os.path.abspath(DEFAULT_FOLDER)
        if create and default:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
        elif create:
            os.makedirs(folder, exist_ok=True)
        try:
            info = os.lstat(folder) if default else os.stat(folder)
        except FileNotFoundError:
            return False
        problem = None
        if not stat.S_ISDIR(info.st_mode):
            problem = "is not a folder" + (" but a link" if stat.S_ISLNK(info.st_mode) else "")
        elif hasattr(os, "getuid") and info.st_uid != os.getuid():
            problem = f"belongs to another user (uid {info.st_uid})"
        elif default and info.st_mode & 0o077:
            problem = f"may be opened by other users (mode {stat.S_IMODE(info.st_mode):o})"
        elif info.st_mode & 0o002:
            problem = "may be written to by every user"
        if problem is not None:
            raise ConfigError(
                f"{type(self).__name__} reads no pickles from {folder}: it {problem}; "
                "remove it, or give 'filename_tmpl' a folder of your own"
            )
        return True

    def __getitem__(self, key: Any) -> Any:
        filename = self._filename(key)
        if not self._folder(filename, create=False) or not os.path.exists(filename):
            raise KeyError(key)
        return self.load(filename)

    def __setitem__(self, key: Any, value: Any) -> None:
        filename = self._filename(key)
        self._folder(filename, create=True)
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
