"""``GET /release``: the release at a glance, for the dashboard's Release panel and for scripts.

It answers :func:`pipeforge.release.overview.release_overview`: every
alias with its version, tags and stored scores; each predict service's
traffic (split in force, shares, shadow); the live scores per canary arm
and per version; each version's live score over time; and the drift report
per service, version and feature when the config has a ``drift`` entry.

It reads model metadata, the store's properties and figures computed over
the prediction log, never a client's inputs, so it is guarded like
``/list`` and ``/live-scores``: by ``list_decorators`` (docs/security.md).
The figures read from the prediction logs are reused for
:data:`READ_SECONDS` by each process; aliases and traffic are read afresh on
every request, so a promotion shows at once.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .. import web
from ..factory import decorate
from ..release.overview import logged_scores, release_overview
from .lifecycle import current_state

if TYPE_CHECKING:
    from flask import Flask, Response

    from .lifecycle import AppState

__all__ = ["register_release_overview", "READ_SECONDS"]

READ_SECONDS = 5.0  #: how long one reading of the prediction logs serves ``/release``


class _Scores:
    """The live scores and their series, read from the logs at most every READ_SECONDS."""

    def __init__(self, records: Any) -> None:
        self.records = records
        self._lock = threading.Lock()
        self._read: tuple[float, dict[str, Any]] | None = None

    def read(self) -> dict[str, Any] | None:
        records = self.records
        if records is None or not records.logs:
            return None
        with self._lock:
            if self._read is not None and time.monotonic() - self._read[0] < READ_SECONDS:
                return self._read[1]
            points = {key: getattr(s, "entry_point", key) for key, s in records.state.services}
            found = logged_scores(records.logs, points, records.scoring)
            self._read = (time.monotonic(), found)
            return found


def register_release_overview(app: Flask, state: AppState) -> None:
    """Add ``GET /release`` (wrapped in ``list_decorators``)."""
    from .openapi import describe_route

    scores = _Scores(app.extensions.get("pipeforge_release_records"))

    def release() -> Response:
        """Aliases, traffic, live scores over time and drift, per service."""
        from werkzeug.exceptions import NotFound

        current = current_state()
        persister = current.model_persister
        if persister is None:  # an online-only service: nothing is released here
            raise NotFound("this service has no model store (no 'model_persister' in its config)")
        monitor = app.extensions.get("pipeforge_drift")
        body = release_overview(
            persister,
            current.services,
            current.config,
            scores=scores.read(),
            drift=monitor.report() if monitor is not None else None,
        )
        body["metadata"] = web.ok_metadata(current.service_metadata)
        return web.json_response(body)

    view = decorate(release, state.config, "list_decorators")
    app.add_url_rule("/release", endpoint="release", view_func=view, methods=["GET"])
    describe_route(app, "release", _DOC)


_SCORE = {
    "type": "object",
    "properties": {
        "service": {"type": ["string", "null"]},
        "role": {"type": ["string", "null"]},
        "alias": {"type": ["string", "null"]},
        "version": {"type": ["integer", "null"]},
        "metric": {"type": "string"},
        "score": {"type": "number"},
        "n": {"type": "integer"},
        "higher_is_better": {"type": "boolean"},
    },
}
_ANSWER = {
    "type": "object",
    "required": ["aliases", "versions", "services", "live_scores", "version_scores", "timeline"],
    "properties": {
        "aliases": {"type": "object", "additionalProperties": {"type": "integer"}},
        "versions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": "integer"},
                    "aliases": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                    "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                },
            },
        },
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "traffic": {"type": ["object", "null"]},
                    "stored": {"type": "boolean"},
                    "shares": {"type": "object", "additionalProperties": {"type": "number"}},
                    "shadow": {"type": ["object", "null"]},
                },
            },
        },
        "live_scores": {"type": "array", "items": _SCORE},
        "version_scores": {"type": "array", "items": _SCORE},
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": ["integer", "null"]},
                    "metric": {"type": "string"},
                    "points": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "time": {"type": "number"},
                                "score": {"type": "number"},
                                "n": {"type": "integer"},
                            },
                        },
                    },
                },
            },
        },
        "drift": {"type": ["object", "null"], "description": "the drift report (pf-drift --json)"},
    },
}
_DOC = {
    "get": {
        "operationId": "release",
        "tags": ["release"],
        "summary": "Aliases, traffic, live scores over time and drift (the dashboard's Release panel)",
        "responses": {
            "200": {
                "description": "the release at a glance",
                "content": {"application/json": {"schema": _ANSWER}},
            },
            "404": {"description": "this service has no model store"},
        },
    }
}
