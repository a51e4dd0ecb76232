"""The errors of online learning, each with the HTTP status it is answered with.

They extend pipeforge's tree (:mod:`pipeforge.errors`), so the CLI reports
them as one line, and carry an ``http_status`` that the web boundary uses::

    RequestError (400)
    ├── UnknownModelError (404, LookupError)   no online model of that name
    └── UnknownIdError (404, LookupError)      nothing stored for that id
    UploadDisabledError (403, PermissionError) POST /api/model is off
    StoreError (503, PersistenceError)         the shared store failed

A client never reads the store's or its driver's words: when the database
or Redis fails, :class:`Outage` logs them (once per outage, and once more
when the store answers again) and gives the client a :class:`StoreError`
that only says the store is unavailable.
"""

from __future__ import annotations

import logging
import time

from ..errors import PersistenceError, PipeforgeError, RequestError

__all__ = ["UnknownModelError", "UnknownIdError", "UploadDisabledError", "StoreError", "Outage"]

logger = logging.getLogger(__name__)


class UnknownModelError(RequestError, LookupError):
    """No online model has that name (or there is no default model)."""

    http_status = 404


class UnknownIdError(RequestError, LookupError):
    """``/api/learn`` got an ``id`` that has no stored features (never predicted, or learnt)."""

    http_status = 404


class UploadDisabledError(PipeforgeError, PermissionError):
    """Uploading models is off in this config."""

    http_status = 403


class StoreError(PersistenceError):
    """The shared store could not be read or written; nothing was changed."""

    http_status = 503


class Outage:
    """The failures of one store (``what``, e.g. ``"the online store (Redis)"``), said once.

    :meth:`failed` logs the first failure of an outage as a warning with
    the driver's text (later ones at debug level) and returns the
    :class:`StoreError` for the client; :meth:`answered` ends the outage.
    """

    def __init__(self, what: str):
        self.what = what
        self.since: float | None = None  # ``time.monotonic()`` of the first failure

    def failed(self, exc: BaseException) -> StoreError:
        """The client's error for the store failure ``exc`` (logged, not told)."""
        if self.since is None:
            self.since = time.monotonic()
            logger.warning(
                "%s cannot be used (%s: %s); answering 503 until it can",
                self.what,
                type(exc).__name__,
                exc,
            )
        else:
            logger.debug("%s still fails: %s: %s", self.what, type(exc).__name__, exc)
        return StoreError(
            f"{self.what} cannot be reached right now; nothing was changed; "
            "try again later (the server log says why)"
        )

    def answered(self) -> None:
        """The store answered: an outage, if one was going on, is over."""
        since, self.since = self.since, None
        if since is not None:
            logger.warning("%s answers again (after %.1f s)", self.what, time.monotonic() - since)
