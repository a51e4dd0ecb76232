"""The exceptions pipeforge raises, in one tree.

Every error a user can cause or meet derives from :class:`PipeforgeError`,
and also from the builtin a caller would naturally catch::

    PipeforgeError
    ├── ConfigError (ValueError)         a config file is wrong; exit status 2
    │   └── MissingKeyError (KeyError)   a required entry is absent
    ├── UsageError (ValueError)          a script was called wrongly; exit status 2
    ├── PersistenceError                 reading or writing models failed
    │   ├── UnknownVersionError (LookupError)   no model with that version
    │   ├── NoModelError (LookupError)          nothing stored / activated yet
    │   │   └── UnmigratedStoreError            the store holds Palladium's models, not imported
    │   ├── ModelWriteError                     a model could not be stored
    │   ├── StoreUnavailableError (503)         the store cannot be read now; retried
    │   ├── UntrustedModelError (503)           a stored model fails its check; never loaded
    │   ├── ActiveModelError (409)              deleting the active model needs force
    │   └── UnknownAliasError (LookupError, 404) no version carries that alias
    ├── DataError                        a dataset could not be loaded
    ├── PredictError                     a model refused to predict
    ├── RequestError (ValueError)        an HTTP request was malformed (400)
    ├── VersionError                     a pipeline's ops are not linked
    └── JobQueueError                    the job queue (Redis) cannot take or report a job

The CLI turns these into one line on stderr and an exit status; the HTTP
layer turns them into the documented JSON error body.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "PipeforgeError",
    "ConfigError",
    "MissingKeyError",
    "UsageError",
    "PersistenceError",
    "UnknownVersionError",
    "NoModelError",
    "UnmigratedStoreError",
    "ModelWriteError",
    "StoreUnavailableError",
    "UntrustedModelError",
    "ActiveModelError",
    "UnknownAliasError",
    "DataError",
    "PredictError",
    "RequestError",
    "VersionError",
    "JobQueueError",
]


class PipeforgeError(Exception):
    """Base of every error pipeforge raises on purpose."""


class ConfigError(PipeforgeError, ValueError):
    """A configuration is wrong; says which file, which key and what is wrong.

    ``str(error)`` is the one line a user sees:
    ``config.py: model.__factory__: cannot import 'sklearn.nope.Foo' (...)``.
    """

    def __init__(self, problem: str, *, source: str | None = None, key: str | None = None):
        self.problem = problem
        self.source = source
        self.key = key
        super().__init__(problem)

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.key) if p]
        parts.append(self.problem)
        return ": ".join(parts)

    def located(self, *, source: str | None = None, key: str | None = None) -> ConfigError:
        """Fill in where the error happened, keeping what is already known."""
        if self.source is None and source is not None:
            self.source = source
        if self.key is None and key is not None:
            self.key = key
        return self


class MissingKeyError(ConfigError, KeyError):
    """A required config entry is absent; also a ``KeyError`` for dict-minded callers."""

    def __str__(self) -> str:
        return ConfigError.__str__(self)


class UsageError(PipeforgeError, ValueError):
    """A script got arguments it cannot use."""


class PersistenceError(PipeforgeError):
    """Reading or writing models failed."""


class UnknownVersionError(PersistenceError, LookupError):
    """No model with the requested version exists.

    Every persister raises it through this class so the wording is the same
    whatever the storage.
    """

    def __init__(self, version: object, available: Iterable[object] = ()):
        self.version = version
        self.available = list(available)
        known = ", ".join(str(v) for v in self.available) or "none"
        super().__init__(f"no model with version {version!r} (available versions: {known})")

    def __str__(self) -> str:
        return self.args[0]


class NoModelError(PersistenceError, LookupError):
    """There is no model to read: none was written or none is active."""

    def __str__(self) -> str:
        return self.args[0] if self.args else "no model has been stored yet"


class UnmigratedStoreError(NoModelError):
    """The store holds models another program (Palladium) wrote that pf-upgrade has not imported.

    Every read, write, activation and listing fails with it, so pipeforge
    never reports an empty store or hands out a version number already
    taken by one of those models.
    """


class ModelWriteError(PersistenceError):
    """A model could not be stored; nothing of it was kept."""


class StoreUnavailableError(PersistenceError):
    """The model store cannot be read right now (down, unreachable, its file gone); retried.

    Its message is what a client may see (the web service answers 503 with
    it): it says what is unavailable, never the driver's words, which go to
    the server log.
    """

    http_status = 503


class UntrustedModelError(PersistenceError):
    """A stored model is refused before it is loaded: it was not unpickled.

    Its stored bytes do not match the digest recorded when it was written
    (changed, or written by someone without the model key), it carries no
    digest while a model key is set, or, in skops format, it holds types
    the allow-list does not trust. The web service answers 503: the model
    is not available.
    """

    http_status = 503


class ActiveModelError(PersistenceError):
    """A version cannot be deleted because it is the active model (unless forced).

    The web service answers it with 409.
    """

    http_status = 409


class UnknownAliasError(PersistenceError, LookupError):
    """No stored version carries the alias asked for (``pf-admin alias`` sets one).

    The web service answers it with 404.
    """

    http_status = 404


class DataError(PipeforgeError):
    """A dataset loader could not produce data."""


class PredictError(PipeforgeError):
    """Raised by a model to say it cannot deliver a prediction for this input."""

    def __init__(self, error_message: str, error_code: int = -1):
        self.error_message = error_message
        self.error_code = error_code
        super().__init__(error_message, error_code)

    def __str__(self) -> str:
        return f"{self.error_message} ({self.error_code})"


class RequestError(PipeforgeError, ValueError):
    """An HTTP request cannot be turned into samples (answered with 400)."""

    def __init__(self, message: str, error_code: int = -1):
        self.error_code = error_code
        super().__init__(message)


class VersionError(PipeforgeError):
    """A pipeline's ops were not trained on their upstream's current versions."""


class JobQueueError(PipeforgeError):
    """The job queue cannot take or report a job (e.g. its Redis server is unreachable).

    The web service answers it with 503: serving goes on, jobs cannot be taken now.
    """

    http_status = 503
