"""Feedback: the ground truth of a logged prediction, joined to it exactly once.

``POST /feedback`` (:mod:`pipeforge.server.feedback`) takes
``{"id": "<request id>", "ground_truth": ...}``, or a list of those. The
ground truth of a GET's single sample is one value; a POST's is a list with
one value per sample. Each request id takes feedback once: the store
refuses a second one in the database itself (a primary key; an exclusive
file for JSON lines logs), whichever process sends it, and it is answered
409. An id the log does not hold is 404 (a prediction is logged within the
log's ``flush_seconds`` of its answer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import PipeforgeError, RequestError
from .prediction_log import LoggedPrediction, LogStore

__all__ = [
    "UnknownPredictionError",
    "FeedbackExistsError",
    "record_feedback",
    "record_feedback_batch",
    "MAX_BATCH",
]

MAX_BATCH = 1000  #: feedbacks in one request at most
_MAX_ID = 200


class UnknownPredictionError(PipeforgeError, LookupError):
    """No logged prediction has this request id (404)."""

    http_status = 404


class FeedbackExistsError(PipeforgeError):
    """The prediction has its feedback already (409)."""

    http_status = 409


def _request_id(item: Mapping[str, Any]) -> str:
    value = item.get("id")
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise RequestError(
            f"'id' must be the request id of a logged prediction (a text of 1 to {_MAX_ID} "
            f"characters, as the X-Request-ID header of its answer); got {value!r}"
        )
    return value


def _truths(entry: LoggedPrediction, truth: Any) -> list[Any]:
    if entry.single:
        if isinstance(truth, list | dict):
            raise RequestError("the prediction had one sample: send one ground truth value")
        return [truth]
    if not isinstance(truth, list) or len(truth) != len(entry.outputs):
        raise RequestError(
            f"the prediction had {len(entry.outputs)} samples: send a list of as many "
            "ground truth values"
        )
    if any(isinstance(value, list | dict) for value in truth):
        raise RequestError("each ground truth value must be a number, a text or a boolean")
    return truth


def record_feedback(
    logs: Iterable[LogStore],
    item: Any,
    *,
    flush: Callable[[], Any] | None = None,
) -> LoggedPrediction:
    """Join ``item`` (``{"id", "ground_truth"}``) to its logged prediction in one of ``logs``.

    ``flush``: called once before a second look when the id is not found
    (this process's queued answers are written first). Raises
    :class:`~pipeforge.errors.RequestError` (400), :class:`UnknownPredictionError`
    (404) or :class:`FeedbackExistsError` (409).
    """
    if not isinstance(item, Mapping):
        raise RequestError('send {"id": ..., "ground_truth": ...} (or a list of those)')
    extra = sorted(set(item) - {"id", "ground_truth"})
    if extra:
        raise RequestError(f"unknown field {extra[0]!r}; a feedback has 'id' and 'ground_truth'")
    request_id = _request_id(item)
    if item.get("ground_truth") is None:
        raise RequestError("'ground_truth' is missing (or null)")
    stores = list(logs)
    for attempt in range(2):
        for log in stores:
            entry = log.find(request_id)
            if entry is None:
                continue
            truths = _truths(entry, item["ground_truth"])
            at = time.time()
            if not log.add_feedback(request_id, truths, at):
                raise FeedbackExistsError(f"prediction {request_id!r} has its feedback already")
            entry.ground_truth, entry.feedback_time = truths, at
            return entry
        if attempt == 0 and flush is not None:
            flush()
        else:
            break
    raise UnknownPredictionError(f"no logged prediction has the request id {request_id!r}")


def record_feedback_batch(
    logs: Iterable[LogStore], items: list[Any], *, flush: Callable[[], Any] | None = None
) -> list[dict[str, Any]]:
    """:func:`record_feedback` for each item; one outcome per item, in order.

    Each outcome is ``{"id", "status"}`` with the HTTP status the item
    alone would have got (200, 400, 404, 409), and ``error_message`` for
    the ones refused. One refused item does not stop the others.
    """
    if len(items) > MAX_BATCH:
        raise RequestError(f"send at most {MAX_BATCH} feedbacks in one request; got {len(items)}")
    stores = list(logs)
    flushed = flush is None
    outcomes = []
    for item in items:
        request_id = item.get("id") if isinstance(item, Mapping) else None
        try:
            record_feedback(stores, item, flush=None if flushed else flush)
        except (RequestError, UnknownPredictionError, FeedbackExistsError) as exc:
            status = getattr(exc, "http_status", 400)
            outcomes.append({"id": request_id, "status": status, "error_message": str(exc)})
            flushed = flushed or isinstance(exc, UnknownPredictionError)
        else:
            outcomes.append({"id": request_id, "status": 200})
    return outcomes
