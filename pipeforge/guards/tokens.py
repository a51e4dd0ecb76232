"""The built-in token guard: bearer tokens from an environment variable or a file.

A :class:`TokenGuard` is a decorator a decorator list can name::

    server_fit_decorators: [pipeforge.guards.require_token]   # PIPEFORGE_TOKENS(_FILE)
    online_admin_decorators:
      - {__factory__: pipeforge.guards.TokenGuard, env: ONLINE_ADMIN_TOKENS}

A request passes when its ``Authorization: Bearer <token>`` header carries
one of the guard's tokens; else it is answered 401 with the JSON error body
and a ``WWW-Authenticate: Bearer`` challenge. The tokens come from the
environment variable ``env`` (several separated by spaces, commas or new
lines) and from a file (``file``, or the file the variable ``<env>_FILE``
names: one token a line, ``#`` starts a comment). The file is looked at on
every request and read again when it changed, so a rotated file (new token
added, old one removed a while later) takes effect without a restart. Each
token known is compared with the one sent in constant time (both hashed,
then :func:`hmac.compare_digest`), every one of them whatever matched.

Outside an HTTP request (``pf-fit`` running the same decorator list, a job)
the guard lets the call through: there is no request to check, and whoever
runs a command already holds the store's credentials.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..config.files import path_base
from ..errors import ConfigError

__all__ = ["TokenGuard", "require_token", "MIN_TOKEN_LENGTH", "SECURITY_ATTRIBUTE"]

logger = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])

#: shorter tokens are refused: a guessable token is no guard
MIN_TOKEN_LENGTH = 16
#: the attribute a guarded view carries: the HTTP auth schemes it asks for (for OpenAPI)
SECURITY_ATTRIBUTE = "pipeforge_security"

_SEPARATORS = re.compile(r"[\s,]+")
#: a token file changed less than this long ago is read again at the next request
_SETTLED_NS = 2_000_000_000


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenGuard:
    """A decorator that lets a request through only with a known bearer token.

    ``env`` names the environment variable holding tokens (``None``: none);
    ``file`` is a file of tokens, one a line (a relative path is taken from
    the config's folder); without ``file`` the variable ``<env>_FILE`` may
    name one. ``realm`` goes into the ``WWW-Authenticate`` challenge.
    """

    def __init__(
        self,
        env: str | None = "PIPEFORGE_TOKENS",
        file: str | None = None,
        realm: str = "pipeforge",
    ) -> None:
        self.env = env
        self.file = file
        self.realm = realm
        self._folder: str | None = None
        self._lock = threading.Lock()
        self._env_seen: str | None = None
        self._env_digests: tuple[bytes, ...] = ()
        self._file_seen: tuple[Any, ...] | None = None
        self._file_settled = False
        self._file_digests: tuple[bytes, ...] = ()

    def __repr__(self) -> str:
        return f"TokenGuard(env={self.env!r}, file={self.file!r})"

    def initialize_component(self, config: Mapping[str, Any]) -> None:
        """Take relative token file paths from the config's folder."""
        self._folder = path_base(config)

    # -- where the tokens are ------------------------------------------------------

    def _check_settings(self) -> None:
        for name in ("env", "file"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(
                    f"parameter {name!r} of TokenGuard must be a non-empty string or null; "
                    f"got {value!r} instead"
                )
        if self.env is None and self.file is None:
            raise ConfigError(
                "TokenGuard needs 'env' (an environment variable) or 'file' (a file of tokens)"
            )

    def token_file(self) -> str | None:
        """The file of tokens: ``file``, else the one ``<env>_FILE`` names; ``None`` for none."""
        path = self.file
        if path is None and self.env is not None:
            path = os.environ.get(f"{self.env}_FILE") or None
        if path is None:
            return None
        path = os.path.expanduser(path)
        if not os.path.isabs(path) and self._folder:
            path = os.path.join(self._folder, path)
        return path

    def _where(self) -> str:
        places = []
        if self.env is not None:
            places.append(f"the environment variable {self.env}")
        if self.file is not None:
            places.append(f"the file {self.file}")
        elif self.env is not None:
            places.append(f"a file named by {self.env}_FILE")
        return " or ".join(places)

    @staticmethod
    def _usable(tokens: list[str], where: str) -> tuple[bytes, ...]:
        short = [t for t in tokens if len(t) < MIN_TOKEN_LENGTH]
        if short:
            logger.error(
                "%d token(s) in %s are shorter than %d characters and are ignored",
                len(short),
                where,
                MIN_TOKEN_LENGTH,
            )
        return tuple(_digest(t) for t in tokens if len(t) >= MIN_TOKEN_LENGTH)

    def _env_tokens(self) -> tuple[bytes, ...]:
        value = os.environ.get(self.env, "") if self.env is not None else ""
        if value != self._env_seen:
            tokens = [t for t in _SEPARATORS.split(value) if t]
            self._env_digests = self._usable(tokens, f"${self.env}")
            self._env_seen = value
        return self._env_digests

    def _file_tokens(self, *, strict: bool) -> tuple[bytes, ...]:
        path = self.token_file()
        if path is None:
            self._file_seen, self._file_digests = None, ()
            return ()
        try:
            info = os.stat(path)
            seen = (path, info.st_ino, info.st_mtime_ns, info.st_size)
            if seen != self._file_seen or not self._file_settled:
                with open(path, encoding="utf-8") as handle:
                    lines = [line.split("#", 1)[0].strip() for line in handle]
                self._file_digests = self._usable([line for line in lines if line], path)
                self._file_seen = seen
                # a file written within the clock's granularity may change again unseen
                self._file_settled = time.time_ns() - info.st_mtime_ns > _SETTLED_NS
        except (OSError, UnicodeDecodeError) as exc:
            if strict:
                raise ConfigError(f"TokenGuard cannot read its token file {path}: {exc}") from None
            logger.error("the token file %s cannot be read (%s); refusing every token", path, exc)
            self._file_seen, self._file_digests = None, ()
        return self._file_digests

    def _digests(self, *, strict: bool = False) -> tuple[bytes, ...]:
        with self._lock:
            return self._env_tokens() + self._file_tokens(strict=strict)

    def check_ready(self) -> None:
        """Raise :class:`ConfigError` unless at least one usable token is there (at app start)."""
        self._check_settings()
        if not self._digests(strict=True):
            raise ConfigError(
                f"the token guard has no token of at least {MIN_TOKEN_LENGTH} characters: "
                f"put one in {self._where()}"
            )

    # -- the check -----------------------------------------------------------------

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is one of the guard's tokens (constant time over all of them)."""
        sent = _digest(token)
        matched = False
        for known in self._digests():
            matched |= hmac.compare_digest(sent, known)
        return matched

    def authorize(self, header: str | None) -> None:
        """Raise werkzeug's ``Unauthorized`` unless ``header`` is ``Bearer <a known token>``."""
        from werkzeug.datastructures import WWWAuthenticate
        from werkzeug.exceptions import Unauthorized

        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "send a bearer token: Authorization: Bearer <token>",
                www_authenticate=WWWAuthenticate("bearer", {"realm": self.realm}),
            )
        if not self.accepts(token):
            raise Unauthorized(
                "the bearer token is not valid",
                www_authenticate=WWWAuthenticate(
                    "bearer", {"realm": self.realm, "error": "invalid_token"}
                ),
            )

    def __call__(self, view: View) -> View:
        """``view`` guarded: called only for requests with a known token."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            flask = sys.modules.get("flask")  # no Flask loaded: no request to check
            if flask is not None and flask.has_request_context():
                self.authorize(flask.request.headers.get("Authorization"))
            return view(*args, **kwargs)

        schemes = tuple(getattr(view, SECURITY_ATTRIBUTE, ()))
        setattr(guarded, SECURITY_ATTRIBUTE, (*schemes, "bearer"))
        return guarded  # type: ignore[return-value]  # same call signature as view


#: the guard most configs need: tokens from ``PIPEFORGE_TOKENS`` or the file ``PIPEFORGE_TOKENS_FILE`` names
require_token = TokenGuard()
