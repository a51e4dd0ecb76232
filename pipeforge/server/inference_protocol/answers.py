"""How the protocol's routes answer: JSON bodies, and errors as ``{"error": "..."}``.

The protocol's error object is ``{"error": "<message>"}``; pipeforge's error
body is ``{"metadata": {..., "status": "ERROR", "error_code",
"error_message"}}`` (:mod:`pipeforge.web`). A protocol route answers both in
one object, so that the protocol's clients and pipeforge's read the same
answer, with the status of :func:`pipeforge.web.error_status`: a bad body
400, an unknown model or version 404, a model not ready (or no model yet)
400 on the readiness routes and 503 on the others, a fault of the server
500 with nothing of it sent.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ... import web
from ...errors import RequestError

if TYPE_CHECKING:
    from flask import Response

__all__ = ["NotFoundError", "NotReadyError", "error_answer", "protocol_view", "empty_answer"]


class NotFoundError(RequestError, LookupError):
    """No model (or no version of it) by the name in the path: 404."""

    http_status = 404


class NotReadyError(RequestError):
    """A readiness route's "no": the model (or the server) cannot answer yet (400, the protocol's 4xx)."""

    http_status = 400


def error_answer(exc: BaseException, service_metadata: Mapping[str, Any] | None) -> Response:
    """The error response for ``exc``: the protocol's ``error`` beside pipeforge's ``metadata``."""
    response = web.error_response(exc, service_metadata)
    body = json.loads(response.get_data())
    response.set_data(web.dumps({"error": body["metadata"]["error_message"], **body}))
    return response


def protocol_view(
    view: Callable[..., Response], service_metadata: Mapping[str, Any] | None
) -> Callable[..., Response]:
    """``view`` answering whatever it (or a decorator inside) raises with :func:`error_answer`."""

    @functools.wraps(view)
    def answer(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except Exception as exc:
            return error_answer(exc, service_metadata)

    return answer


def empty_answer() -> Response:
    """A 200 with an empty body: the protocol's "true" of a health or readiness route."""
    from flask import Response

    return Response(status=200)
