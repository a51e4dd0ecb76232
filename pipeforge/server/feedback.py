"""``POST /feedback`` and ``GET /live-scores``: ground truth in, live scores out.

Both exist when a predict service keeps a prediction log (its
``prediction_log`` entry, :mod:`pipeforge.release.recording`). ``POST
/feedback`` changes state, so it is off until the config says::

    feedback:
      enabled: true
    feedback_decorators: [pipeforge.guards.require_token]

and refused at start without a guard (docs/security.md). It takes
``{"id": ..., "ground_truth": ...}`` (200, 400, 404 for an unknown id,
409 for a second feedback) or a list of those (200 with one outcome per
item). ``GET /live-scores`` (guarded like ``/list``, by ``list_decorators``)
answers the scores of :func:`pipeforge.release.live_scores.live_scores`:
``?by=arm|alias|version`` and ``?service=/predict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import guards, web
from ..errors import ConfigError, RequestError
from ..factory import decorate
from ..release.feedback import MAX_BATCH, record_feedback, record_feedback_batch
from ..release.live_scores import DEFAULT_WINDOW, LiveScore, live_scores
from ..release.recording import log_of, settings_of, sink_for

if TYPE_CHECKING:
    from flask import Flask, Response

    from ..release.prediction_log import LogStore
    from .lifecycle import AppState

__all__ = ["ReleaseRecords", "register_feedback", "feedback_settings"]

_KEYS = ("enabled",)


def feedback_settings(config: Mapping[str, Any]) -> bool:
    """Whether ``POST /feedback`` is on (the ``feedback`` entry, checked)."""
    entry = config.get("feedback") or {}
    source = guards.source_of(config, "feedback")
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"must be a mapping such as {{enabled: true}}; got {entry!r}",
            source=source,
            key="feedback",
        )
    from ..config.keys import unknown_key

    for key in entry:
        if key not in _KEYS:
            raise ConfigError(unknown_key(key, _KEYS), source=source, key=f"feedback.{key}")
    return guards.switched_on(config, "feedback")


class ReleaseRecords:
    """The app's prediction logs and sinks, by service config key."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.logs: dict[str, LogStore] = {}
        self.sinks: dict[str, Any] = {}
        self.scoring: dict[str, Any] = {}
        config = state.config
        for key, service in state.services:
            try:
                sink = sink_for(key, service, config, state.model_persister)
                log = log_of(key, service, config, state.model_persister)
                settings = settings_of(key, service)[0]
            except ConfigError as exc:
                raise exc.located(source=guards.source_of(config, key)) from None
            if sink is not None:
                self.sinks[key] = sink
            if log is not None and settings is not None:
                self.logs[key] = log
                own = settings.scoring
                self.scoring[key] = own if own is not None else config.get("scoring")

    def flush(self) -> None:
        """Write what this process has queued (before a second look for an unknown id)."""
        for sink in self.sinks.values():
            sink.flush(timeout=5.0)

    def stop(self) -> None:
        for sink in self.sinks.values():
            sink.close()

    def scores(
        self, *, service: str | None = None, by: str = "arm", window: int = DEFAULT_WINDOW
    ) -> list[LiveScore]:
        """The live scores of every log (each with its service's scorer)."""
        found: list[LiveScore] = []
        entry_points = {key: getattr(s, "entry_point", None) for key, s in self.state.services}
        for key, log in self.logs.items():
            point = entry_points.get(key)
            if service is not None and point != service:
                continue
            found.extend(
                live_scores(log, service=point, scoring=self.scoring[key], window=window, by=by)
            )
        return found


def register_feedback(app: Flask, state: AppState) -> ReleaseRecords:
    """Set up the services' logs and sinks; add ``/feedback`` and ``/live-scores`` when logged."""
    from .openapi import describe_route

    config = state.config
    records = ReleaseRecords(state)
    app.extensions["pipeforge_release_records"] = records
    state.stoppers.append(records.stop)
    enabled = feedback_settings(config)
    if not records.logs:
        return records
    metadata = state.service_metadata

    def feedback() -> Response:
        """Join ground truth to logged predictions."""
        body = web.read_json(expect=(dict, list))
        logs = list(records.logs.values())
        if isinstance(body, list):
            if not body:
                raise RequestError("the request body is an empty list; send at least one feedback")
            outcomes = record_feedback_batch(logs, body, flush=records.flush)
            return web.json_response({"result": outcomes, "metadata": web.ok_metadata(metadata)})
        entry = record_feedback(logs, body, flush=records.flush)
        result = {"id": entry.request_id, "version": entry.version, "alias": entry.alias}
        return web.json_response({"result": result, "metadata": web.ok_metadata(metadata)})

    def scores() -> Response:
        """Live scores per version, alias and canary arm, and of the shadow."""
        from flask import request

        by = request.args.get("by", "arm")
        if by not in ("arm", "alias", "version"):
            raise RequestError(f"'by' must be 'arm', 'alias' or 'version'; got {by!r}")
        service = request.args.get("service")
        found = records.scores(service=service, by=by)
        body = {"result": [s.as_dict() for s in found], "metadata": web.ok_metadata(metadata)}
        return web.json_response(body)

    if enabled:
        view = guards.gate(config, "feedback").wrap(feedback)
        app.add_url_rule("/feedback", endpoint="feedback", view_func=view, methods=["POST"])
        describe_route(app, "feedback", _FEEDBACK_DOC)
    listed = decorate(scores, config, "list_decorators")
    app.add_url_rule("/live-scores", endpoint="live_scores", view_func=listed)
    describe_route(app, "live_scores", _SCORES_DOC)
    return records


_ITEM = {
    "type": "object",
    "required": ["id", "ground_truth"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "ground_truth": {"description": "one value, or a list of one per sample of a POST"},
    },
    "additionalProperties": False,
}
_ERRORS = {
    "400": {"description": "not a feedback"},
    "404": {"description": "no logged prediction has this id"},
    "409": {"description": "this prediction has its feedback already"},
}
_FEEDBACK_DOC = {
    "post": {
        "operationId": "feedback",
        "tags": ["release"],
        "summary": "Give the ground truth of a logged prediction (once per request id)",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [_ITEM, {"type": "array", "items": _ITEM, "maxItems": MAX_BATCH}]
                    }
                }
            },
        },
        "responses": {"200": {"description": "stored (a list: one outcome per item)"}, **_ERRORS},
    }
}
_SCORES_DOC = {
    "get": {
        "operationId": "live_scores",
        "tags": ["release"],
        "summary": "Live scores per version, alias, canary arm and shadow",
        "parameters": [
            {
                "name": "by",
                "in": "query",
                "schema": {"type": "string", "enum": ["arm", "alias", "version"]},
            },
            {"name": "service", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {"description": "the scores"},
            "400": {"description": "a bad parameter"},
        },
    }
}
