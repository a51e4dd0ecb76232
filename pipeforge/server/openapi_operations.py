"""The OpenAPI operation objects of the service's own routes (used by :mod:`.openapi`).

One builder per kind of route: predict services (from their ``mapping``,
``params``, ``predict_proba`` and the served model's classes), ``/alive``,
``/list``, and a generic entry for any other route; with the document's
shared parts (:func:`components`, :func:`json_answer`,
:func:`error_responses`). The routes that change what is served are in
:mod:`.openapi_lifecycle`. Schemas follow the encoding rule of
:mod:`pipeforge.web`: numbers a model computes may be ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.routing import Rule

__all__ = [
    "components",
    "json_answer",
    "error_responses",
    "served_model",
    "predict_operations",
    "alive_operations",
    "list_operations",
    "generic_operations",
]

_TYPES = {
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
}
_NUMBER = {"type": ["number", "null"]}  # NaN and infinities are answered as null

_REF_ERROR = {"$ref": "#/components/responses/Error"}


def components() -> dict[str, Any]:
    """The document's ``components``: the metadata, error and job schemas, the error answer."""
    metadata_props = {
        "service_name": {"type": ["string", "null"]},
        "service_version": {"type": ["string", "null"]},
    }
    return {
        "schemas": {
            "OkMetadata": {
                "type": "object",
                "required": ["service_name", "service_version", "status", "error_code"],
                "properties": {
                    **metadata_props,
                    "status": {"const": "OK"},
                    "error_code": {"const": 0},
                },
                "additionalProperties": True,
            },
            "ErrorMetadata": {
                "type": "object",
                "required": [
                    "service_name",
                    "service_version",
                    "status",
                    "error_code",
                    "error_message",
                ],
                "properties": {
                    **metadata_props,
                    "status": {"const": "ERROR"},
                    "error_code": {"type": "integer"},
                    "error_message": {"type": "string"},
                },
                "additionalProperties": True,
            },
            "Error": {
                "type": "object",
                "required": ["metadata"],
                "properties": {"metadata": {"$ref": "#/components/schemas/ErrorMetadata"}},
                "additionalProperties": False,
            },
            "Job": {
                "type": "object",
                "required": ["job_id"],
                "properties": {"job_id": {"type": "string"}},
            },
        },
        "responses": {
            "Error": {
                "description": "The error body every route answers with.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        },
    }


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response object with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(*statuses: int) -> dict[str, Any]:
    """``{status: the error answer}`` for each of ``statuses``."""
    return {str(status): _REF_ERROR for status in statuses}


def served_model(state: Any) -> Any:
    """The model ``state`` serves now, or ``None`` (no model yet, or the store is down)."""
    persister = getattr(state, "model_persister", None)
    if persister is None:
        return None
    try:
        return persister.read()
    except Exception:  # no model yet, or the store is down: describe without it
        return None


def _labels(model) -> list | None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    return [
        label if isinstance(label, str | int | float | bool) else str(label) for label in labels
    ]


def _result_schema(service, model) -> dict:
    labels = _labels(model)
    if getattr(service, "predict_proba", False):
        if labels is None:
            return {
                "type": "object",
                "additionalProperties": _NUMBER,
                "description": "probability by class label",
            }
        keys = [str(label) for label in labels]
        return {
            "type": "object",
            "properties": {key: _NUMBER for key in keys},
            "required": keys,
            "additionalProperties": False,
            "description": "probability by class label",
        }
    if labels is not None:
        return {"enum": labels, "description": "the predicted class label"}
    if model is not None and callable(getattr(model, "predict", None)):
        return {"description": "the model's prediction (a number is null when not finite)"}
    return {"description": "the model's prediction (no model is loaded to say more)"}


def predict_operations(key: str, service: Any, model: Any) -> dict[str, Any]:
    """GET and POST of the predict service ``key``, described for the served ``model``."""
    from .predict_service import PredictService

    mapping = getattr(service, "mapping", None) or []
    if isinstance(mapping, Mapping):
        mapping = list(mapping.items())
    params = getattr(service, "params", None) or []
    if isinstance(params, Mapping):
        params = list(params.items())
    fields = {name: _TYPES.get(kind, {}) for name, kind in mapping}
    extra = [
        {"name": name, "in": "query", "required": False, "schema": _TYPES.get(kind, {})}
        for name, kind in params
    ]
    plain = isinstance(service, PredictService) and all(
        getattr(type(service), hook) is getattr(PredictService, hook)
        for hook in ("do", "response_from_prediction")
    )
    result = _result_schema(service, model)
    strict = getattr(service, "strict", False) is True
    items: dict[str, Any] = {"type": "object", "required": list(fields), "properties": fields}
    if strict:
        items["additionalProperties"] = False

    def answer(schema, description):
        if not plain:
            return {"description": f"{description} (shaped by {type(service).__name__})"}
        body = {
            "type": "object",
            "required": ["result", "metadata"],
            "properties": {
                "result": schema,
                "metadata": {"$ref": "#/components/schemas/OkMetadata"},
            },
        }
        return json_answer(body, description)

    tag = key
    get: dict[str, Any] = {
        "operationId": f"{_slug(key)}_get",
        "tags": [tag],
        "summary": "Predict one sample given in the query string",
        "parameters": [
            {"name": name, "in": "query", "required": True, "schema": schema}
            for name, schema in fields.items()
        ]
        + extra,
        "responses": {"200": answer(result, "one result"), **error_responses(400, 500, 503)},
    }
    post: dict[str, Any] = {
        "operationId": f"{_slug(key)}_post",
        "tags": [tag],
        "summary": "Predict a list of samples",
        "parameters": extra,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "items": items,
                    }
                }
            },
        },
        "responses": {
            "200": answer({"type": "array", "items": result}, "one result per sample, in order"),
            **error_responses(400, 413, 500, 503),
        },
    }
    if not post["parameters"]:
        del post["parameters"]
    if strict:
        get["description"] = post["description"] = (
            "A field or query parameter not described here is refused (400): the service is strict."
        )
    return {"get": get, "post": post}


def alive_operations() -> dict[str, Any]:
    """``GET /alive``."""
    body: dict[str, Any] = {
        "type": "object",
        "required": [
            "pipeforge_version",
            "service_metadata",
            "memory_usage",
            "model",
            "process_metadata",
        ],
        "properties": {
            "pipeforge_version": {"type": "string"},
            "service_metadata": {"type": "object"},
            "memory_usage": {"type": "integer", "description": "resident memory in MB"},
            "model": {
                "type": "object",
                "properties": {
                    "updated": {"type": ["string", "null"]},
                    "metadata": {"type": ["object", "null"]},
                },
            },
            "process_metadata": {"type": "object"},
        },
    }
    unready = {
        **body,
        "required": [*body["required"], "metadata"],
        "properties": {
            **body["properties"],
            "metadata": {"$ref": "#/components/schemas/ErrorMetadata"},
        },
    }
    return {
        "get": {
            "operationId": "alive",
            "tags": ["service"],
            "summary": "Health check: versions, memory, the served model, jobs",
            "responses": {
                "200": json_answer(body, "ready"),
                "503": json_answer(unready, "not ready (no model, missing process store entries)"),
            },
        }
    }


def list_operations() -> dict[str, Any]:
    """``GET /list``."""
    body = {
        "type": "object",
        "required": ["models", "properties"],
        "properties": {
            "models": {"type": "array", "items": {"type": "object"}},
            "properties": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return {
        "get": {
            "operationId": "list_models",
            "tags": ["service"],
            "summary": "The stored models' metadata and the store's properties",
            "responses": {"200": json_answer(body, "the model store"), **error_responses(500)},
        }
    }


def generic_operations(rule: Rule, view: Any) -> dict[str, Any]:
    """A short entry for any other route: its methods, path parameters and docstring."""
    doc = (getattr(view, "__doc__", None) or "").strip().splitlines()
    summary = doc[0] if doc else f"{rule.endpoint}"
    methods = sorted(m.lower() for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
    parameters = [
        {"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
        for arg in sorted(rule.arguments)
    ]
    ops = {}
    for method in methods:
        op = {
            "operationId": f"{_slug(rule.endpoint)}_{method}",
            "summary": summary,
            "responses": {"default": {"description": "see the route's documentation"}},
        }
        if parameters:
            op["parameters"] = parameters
        ops[method] = op
    return ops


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "route"
