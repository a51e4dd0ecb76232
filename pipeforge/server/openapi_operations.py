"""The OpenAPI operation objects of pipeforge's own routes (used by :mod:`pipeforge.openapi`).

One builder per kind of route: predict services (from their ``mapping``,
``params``, ``predict_proba`` and the served model's classes), ``/alive``,
``/list``, the lifecycle views, the pipelines routes, and a generic entry for
any other route. Schemas follow the encoding rule of :mod:`pipeforge.web`:
numbers a model computes may be ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TYPES = {
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
}
_NUMBER = {"type": ["number", "null"]}  # NaN and infinities are answered as null

_REF_ERROR = {"$ref": "#/components/responses/Error"}


def components() -> dict:
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


def json_answer(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(status): _REF_ERROR for status in statuses}


def served_model(state):
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


def predict_operations(key: str, service, model) -> dict:
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
    get = {
        "operationId": f"{_slug(key)}_get",
        "tags": [tag],
        "summary": "Predict one sample given in the query string",
        "parameters": [
            {"name": name, "in": "query", "required": True, "schema": schema}
            for name, schema in fields.items()
        ]
        + extra,
        "responses": {"200": answer(result, "one result"), **_errors(400, 500, 503)},
    }
    post = {
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
                        "items": {
                            "type": "object",
                            "required": list(fields),
                            "properties": fields,
                        },
                    }
                }
            },
        },
        "responses": {
            "200": answer({"type": "array", "items": result}, "one result per sample, in order"),
            **_errors(400, 500, 503),
        },
    }
    if not post["parameters"]:
        del post["parameters"]
    return {"get": get, "post": post}


def alive_operations() -> dict:
    body = {
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


def job_operations() -> dict:
    record = {
        "type": "object",
        "required": ["job_id", "func", "status"],
        "properties": {
            "job_id": {"type": "string"},
            "func": {"type": "string"},
            "status": {"enum": ["queued", "running", "finished", "error"]},
            "submitted": {"type": ["string", "null"]},
            "started": {"type": ["string", "null"]},
            "finished": {"type": ["string", "null"]},
            "info": {"description": "the job's result, once finished"},
            "error": {"type": "string", "description": "what went wrong, on error"},
        },
    }
    return {
        "get": {
            "operationId": "job",
            "tags": ["lifecycle"],
            "summary": "One background job's record, from any process (or host, with a job queue)",
            "parameters": [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": json_answer(record, "the job's record"), **_errors(404)},
        }
    }


def list_operations() -> dict:
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
            "responses": {"200": json_answer(body, "the model store"), **_errors(500)},
        }
    }


def _version_op(summary: str, done: str) -> dict:
    """An operation on one stored version (``/activate``, ``/delete``)."""
    answer = {
        "type": "object",
        "required": ["model_version", "metadata"],
        "properties": {
            "model_version": {"type": "integer"},
            "metadata": {"$ref": "#/components/schemas/OkMetadata"},
        },
    }
    return {
        "summary": summary,
        "parameters": [
            {
                "name": "model_version",
                "in": "query",
                "required": False,
                "schema": {"type": "integer"},
                "description": "also taken from a form field or a JSON body",
            }
        ],
        "responses": {"200": json_answer(answer, done), **_errors(400, 404, 500)},
    }


def lifecycle_operations(view, methods: set[str]) -> dict | None:
    from . import app as server

    job = json_answer({"$ref": "#/components/schemas/Job"}, "the background job's id")
    flag = {"type": "boolean"}
    if view is server.fit:
        op = {
            "summary": "Fit the configured model in a background job",
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": flag}
                for name in ("persist", "activate", "evaluate")
            ]
            + [
                {
                    "name": "persist_if_better_than",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number"},
                }
            ],
            "responses": {"200": job, **_errors(400, 500)},
        }
    elif view is server.update_model_cache:
        op = {
            "summary": "Refresh this process's model cache in a background job",
            "responses": {"200": job, **_errors(503)},
        }
    elif view is server.activate:
        op = _version_op("Activate a stored model version", "activated")
    elif view is server.delete:
        op = _version_op("Delete a stored model version", "deleted")
    else:
        return None
    name = view.__name__
    return {
        method: {**op, "operationId": f"{name}_{method}", "tags": ["lifecycle"]}
        for method in sorted(m.lower() for m in methods)
    }


def pipeline_operations(endpoint: str, names: list[str]) -> dict | None:
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"enum": names}}
    versions = {"type": "object", "additionalProperties": {"type": "string"}}
    run_body = {
        "type": "object",
        "properties": {
            "pipeline_input": {},
            "use_worker": {"type": ["boolean", "null"]},
            "save": {"type": "boolean"},
        },
    }
    run_answer = {
        "type": "object",
        "required": ["pipeline_output", "versions", "job_id", "job_status"],
        "properties": {
            "pipeline_output": {},
            "versions": versions,
            "job_id": {"type": ["string", "null"]},
            "job_status": {"type": "string"},
        },
    }
    table = {
        "pipelines_main": (
            "post",
            "Run a pipeline",
            [name_param],
            run_body,
            {
                "200": json_answer(run_answer, "the pipeline's output"),
                "202": json_answer(run_answer, "queued as a background job"),
                **_errors(400, 404, 409, 500),
            },
        ),
        "pipelines_load": (
            "post",
            "Load the pipeline's saved op versions",
            [name_param],
            None,
            {"200": json_answer({"type": "object"}, "loaded"), **_errors(404, 409, 500)},
        ),
        "pipelines_save": (
            "post",
            "Save the pipeline's ops",
            [name_param],
            None,
            {"200": json_answer({"type": "object"}, "saved"), **_errors(404, 500)},
        ),
        "pipelines_versions": (
            "get",
            "The versions of the pipeline's nodes",
            [name_param],
            None,
            {"200": json_answer(versions, "node name -> version"), **_errors(404)},
        ),
        "pipelines_pipeline_health": (
            "get",
            "Whether the pipeline is loaded",
            [name_param],
            None,
            {
                "200": json_answer({"type": "object"}, "loaded"),
                "503": json_answer({"type": "object"}, "not loaded"),
                **_errors(404),
            },
        ),
        "pipelines_graph": (
            "get",
            "The pipeline's DAG, its op versions (loaded and current) and its picture (SVG)",
            [
                name_param,
                {"name": "svg", "in": "query", "required": False, "schema": {"type": "boolean"}},
            ],
            None,
            {
                "200": json_answer({"type": "object"}, "the pipeline described"),
                **_errors(400, 404),
            },
        ),
    }
    entry = table.get(endpoint)
    if entry is None:
        return None
    method, summary, parameters, body, responses = entry
    op = {
        "operationId": endpoint,
        "tags": ["pipelines"],
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {method: op}


def generic_operations(rule, view) -> dict:
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
