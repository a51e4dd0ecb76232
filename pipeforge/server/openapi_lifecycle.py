"""The OpenAPI operation objects of the routes that change what is served (for :mod:`.openapi`).

``/jobs/<job_id>``, the lifecycle views a config adds (``/fit``,
``/update-model-cache``, ``/activate``, ``/delete``: found by their mark,
:func:`~.routes.lifecycle_name`, under whatever path) and the pipelines
routes. The building blocks (the error answers, JSON bodies) are those of
:mod:`.openapi_operations`.
"""

from __future__ import annotations

from typing import Any

from .openapi_operations import error_responses, json_answer
from .routes import lifecycle_name

__all__ = ["job_operations", "lifecycle_operations", "pipeline_operations"]


def job_operations() -> dict[str, Any]:
    """``GET /jobs/<job_id>``."""
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
            "responses": {"200": json_answer(record, "the job's record"), **error_responses(404)},
        }
    }


def _version_op(summary: str, done: str) -> dict[str, Any]:
    """An operation on one stored version (``/activate``, ``/delete``)."""
    answer = {
        "type": "object",
        "required": ["model_version", "metadata"],
        "properties": {
            "model_version": {"type": "integer"},
            "metadata": {"$ref": "#/components/schemas/OkMetadata"},
        },
    }
    body = {
        "type": "object",
        "required": ["model_version"],
        "properties": {"model_version": {"type": "integer"}},
    }
    return {
        "summary": summary,
        "requestBody": _json_body(body),
        "responses": {
            "200": json_answer(answer, done),
            **error_responses(400, 403, 404, 415, 500),
        },
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON request body (routes that change state take nothing else: docs/security.md)."""
    return {
        "required": False,
        "description": "JSON only; a config in Palladium's form also takes the query string "
        "or a form",
        "content": {"application/json": {"schema": schema}},
    }


def lifecycle_operations(view: Any, methods: set[str]) -> dict[str, Any] | None:
    """The operations of a lifecycle view (by its mark); ``None`` for any other view."""
    name = lifecycle_name(view)
    job = json_answer({"$ref": "#/components/schemas/Job"}, "the background job's id")
    flag = {"type": "boolean"}
    op: dict[str, Any]
    if name == "fit":
        flags = {flag_name: flag for flag_name in ("persist", "activate", "evaluate")}
        op = {
            "summary": "Fit the configured model in a background job",
            "requestBody": _json_body(
                {
                    "type": "object",
                    "properties": {**flags, "persist_if_better_than": {"type": "number"}},
                }
            ),
            "responses": {"200": job, **error_responses(400, 403, 415, 500)},
        }
    elif name == "update_model_cache":
        op = {
            "summary": "Refresh this process's model cache in a background job",
            "responses": {"200": job, **error_responses(403, 415, 503)},
        }
    elif name == "activate":
        op = _version_op("Activate a stored model version", "activated")
    elif name == "delete":
        op = _version_op("Delete a stored model version", "deleted")
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        schema["properties"]["force"] = {
            "type": "boolean",
            "description": "delete the active version too (else 409)",
        }
        op["responses"].update(error_responses(409))
    elif name in ("set_traffic", "move_alias"):
        op = _release_op(name)
    else:
        return None
    return {
        method: {**op, "operationId": f"{name}_{method}", "tags": ["lifecycle"]}
        for method in sorted(m.lower() for m in methods)
    }


def _release_op(name: str) -> dict[str, Any]:
    """``/traffic`` (a service's canary split) and ``/alias`` (move, remove, promote)."""
    ok = {"$ref": "#/components/schemas/OkMetadata"}
    weights = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
    if name == "set_traffic":
        body = {
            "type": "object",
            "required": ["service", "traffic"],
            "properties": {
                "service": {"type": "string", "description": "the service's entry point"},
                "traffic": {**weights, "type": ["object", "null"]},
            },
        }
        answer = {
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "traffic": weights,
                "stored": {"type": "boolean"},
                "metadata": ok,
            },
        }
        summary, done = "Store a predict service's canary split (null: the config's)", "stored"
    else:
        version = {"type": ["integer", "string"], "description": "a version or an alias"}
        body = {
            "type": "object",
            "required": ["alias"],
            "properties": {
                "alias": {"type": "string"},
                "model_version": version,
                "delete": {"type": "boolean"},
                "promote": {"type": "string", "description": "the alias to promote from"},
                "min_feedback": {"type": "integer", "minimum": 0},
                "margin": {"type": "number", "minimum": 0},
            },
        }
        answer = {
            "type": "object",
            "properties": {
                "alias": {"type": "string"},
                "model_version": {"type": ["integer", "null"]},
                "previous": {"type": ["integer", "null"]},
                "metadata": ok,
            },
        }
        summary, done = "Move, remove or promote an alias of the stored versions", "done"
    return {
        "summary": summary,
        "requestBody": _json_body(body),
        "responses": {
            "200": json_answer(answer, done),
            **error_responses(400, 403, 404, 409, 415, 500, 503),
        },
    }


def pipeline_operations(endpoint: str, names: list[str]) -> dict[str, Any] | None:
    """The operations of a pipelines route (by its endpoint), for the pipelines ``names``."""
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
                **error_responses(400, 404, 409, 500),
            },
        ),
        "pipelines_load": (
            "post",
            "Load the pipeline's saved op versions",
            [name_param],
            None,
            {"200": json_answer({"type": "object"}, "loaded"), **error_responses(404, 409, 500)},
        ),
        "pipelines_save": (
            "post",
            "Save the pipeline's ops",
            [name_param],
            None,
            {"200": json_answer({"type": "object"}, "saved"), **error_responses(404, 500)},
        ),
        "pipelines_versions": (
            "get",
            "The versions of the pipeline's nodes",
            [name_param],
            None,
            {"200": json_answer(versions, "node name -> version"), **error_responses(404)},
        ),
        "pipelines_pipeline_health": (
            "get",
            "Whether the pipeline is loaded",
            [name_param],
            None,
            {
                "200": json_answer({"type": "object"}, "loaded"),
                "503": json_answer({"type": "object"}, "not loaded"),
                **error_responses(404),
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
                **error_responses(400, 404),
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
