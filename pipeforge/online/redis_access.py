"""The Redis online store's connection: the client, its Lua scripts, and its errors.

The store's parameters are checked and the ``redis`` package imported at
first use, not when the config is read (``redis`` is an optional
dependency). The client registers every script of
:mod:`pipeforge.online.redis_scripts` once; each atomic step of the store is
one call of a script. Whatever Redis raises becomes a
:class:`~pipeforge.online.errors.StoreError` naming the store, so the HTTP
layer answers it as the documented store failure (503); Redis's own words
go to the log, once per outage (:class:`~pipeforge.online.errors.Outage`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ConfigError
from ..sql import redact_url
from .errors import Outage, StoreError, UnknownIdError, UnknownModelError
from .redis_scripts import SCRIPTS
from .store import OnlineStore

__all__ = ["RedisAccess", "text"]


def text(value: Any) -> str:
    """A Redis reply (bytes) or an argument as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisAccess(OnlineStore):
    """The part of :class:`~pipeforge.online.redis_store.RedisStore` that talks to Redis.

    The parameters are the store's (see its constructor); the client is made
    at first use and kept until :meth:`close`.
    """

    url: str
    prefix: str
    lock_ms: int

    def _client(self):
        client = self.__dict__.get("_redis")
        if client is not None:
            return client
        if not isinstance(self.url, str) or not re.match(r"rediss?://|unix://", self.url):
            raise ConfigError(
                "parameter 'url' of RedisStore must be a redis:// URL; "
                f"got {redact_url(self.url) if isinstance(self.url, str) else self.url!r} instead"
            )
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ConfigError(
                f"parameter 'prefix' of RedisStore must be a non-empty string; got {self.prefix!r} instead"
            )
        if (
            isinstance(self.lock_ms, bool)
            or not isinstance(self.lock_ms, int)
            or self.lock_ms < 100
        ):
            raise ConfigError(
                f"parameter 'lock_ms' of RedisStore must be an int >= 100; got {self.lock_ms!r} instead"
            )
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "RedisStore needs the redis package: pip install 'pipeforge[redis]'"
            ) from exc
        client = redis.Redis.from_url(self.url)
        self.__dict__["_scripts"] = {
            name: client.register_script(source) for name, source in SCRIPTS.items()
        }
        self.__dict__["_redis"] = client
        return client

    def run_script(self, script: str, *args: Any, keys: Sequence[str] = ()) -> Any:
        """Run one of the store's Lua scripts (``redis_scripts``): each atomic step is one call.

        Public because the learn transaction (``redis_learn``) runs them too;
        an unreachable Redis is the store's outage error.
        """
        self._client()
        try:
            result = self.__dict__["_scripts"][script](
                keys=list(keys), args=[self.prefix, *args] if not keys else list(args)
            )
        except Exception as exc:
            raise self._failed(exc) from exc
        self._answered()
        return result

    def _outage(self) -> Outage:
        outage = self.__dict__.get("_outage_obj")
        if outage is None:
            outage = self.__dict__["_outage_obj"] = Outage("the online store (Redis)")
        return outage

    def _failed(self, exc: Exception) -> Exception:
        if isinstance(exc, StoreError | ConfigError):
            return exc
        return self._outage().failed(exc)

    def _answered(self) -> None:
        outage = self.__dict__.get("_outage_obj")
        if outage is not None and outage.since is not None:
            outage.answered()

    @contextlib.contextmanager
    def _redis_errors(self) -> Iterator[Any]:
        try:
            yield self._client()
        except (StoreError, ConfigError, UnknownModelError, UnknownIdError):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                raise self._failed(exc) from exc
            raise
        self._answered()

    def close(self) -> None:
        """Write the pending call counts and close the connection (it reopens on next use)."""
        super().close()
        client = self.__dict__.pop("_redis", None)
        if client is not None:
            client.close()
