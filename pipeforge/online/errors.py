"""The errors of online learning, each with the HTTP status it is answered with.

They extend pipeforge's tree (:mod:`pipeforge.errors`), so the CLI reports
them as one line, and carry an ``http_status`` that the web boundary uses::

    RequestError (400)
    ├── UnknownModelError (404, LookupError)   no online model of that name
    └── UnknownIdError (404, LookupError)      nothing stored for that id
    UploadDisabledError (403, PermissionError) POST /api/model is off
    StoreError (503, PersistenceError)         the shared store failed
"""

from __future__ import annotations

from ..errors import PersistenceError, PipeforgeError, RequestError

__all__ = ["UnknownModelError", "UnknownIdError", "UploadDisabledError", "StoreError"]


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
