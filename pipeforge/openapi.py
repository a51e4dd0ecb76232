"""``GET /openapi.json`` and ``GET /docs``: the running service described in OpenAPI 3.1.

The document is generated per request from the app itself: every predict
service with its ``mapping`` as typed query parameters and POST body schema
and its response (class labels, or probabilities by class, read from the
model being served), the error body, ``/alive``, ``/list``, the lifecycle and
pipelines routes the config added, ``/metrics``, and any other route with a
generic entry. ``/docs`` is Swagger UI, vendored in ``pipeforge/static``.

Config entry (all keys optional; the defaults shown)::

    'openapi': {'enabled': True, 'path': '/openapi.json', 'docs_path': '/docs',
                'decorator_list_name': 'openapi_decorators'},

``'openapi': False`` turns both routes off; ``'docs_path': None`` only the page.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources

from . import __version__
from .errors import ConfigError
from .factory import decorate

__all__ = ["openapi_document", "register_openapi", "describe_route", "settings"]

logger = logging.getLogger(__name__)

_DEFAULTS = {
    "enabled": True,
    "path": "/openapi.json",
    "docs_path": "/docs",
    "decorator_list_name": "openapi_decorators",
}
_TYPES = {
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
}
_NUMBER = {"type": ["number", "null"]}  # NaN and infinities are answered as null
_ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js.gz", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css.gz", "text/css"),
    "docs.js": ("docs.js", "text/javascript"),
}


def settings(config: Mapping, key: str = "openapi", defaults: Mapping = _DEFAULTS) -> dict | None:
    """The ``key`` config entry merged over ``defaults``; ``None`` when it is switched off."""
    value = config.get(key, True)
    if value is None or value is True:
        value = {}
    if value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be true, false or a dict of settings; got {value!r}", key=key)
    unknown = set(value) - set(defaults)
    if unknown:
        raise ConfigError(
            f"unknown setting {sorted(unknown)[0]!r}; known: {', '.join(defaults)}", key=key
        )
    merged = {**defaults, **value}
    if not merged.get("enabled", True):
        return None
    for name in ("path", "docs_path"):
        path = merged.get(name)
        if (
            name in defaults
            and path is not None
            and not (isinstance(path, str) and path.startswith("/"))
        ):
            raise ConfigError(
                f"must be a path starting with '/'; got {path!r}", key=f"{key}.{name}"
            )
    return merged


# -- schemas ---------------------------------------------------------------------

_REF_ERROR = {"$ref": "#/components/responses/Error"}


def _components() -> dict:
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


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(status): _REF_ERROR for status in statuses}


def _model_of(state):
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


def _predict_ops(key: str, service, model) -> dict:
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
        return _json(body, description)

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


def _alive_op() -> dict:
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
                "200": _json(body, "ready"),
                "503": _json(unready, "not ready (no model, missing process store entries)"),
            },
        }
    }


def _job_op() -> dict:
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
            "responses": {"200": _json(record, "the job's record"), **_errors(404)},
        }
    }


def _list_op() -> dict:
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
            "responses": {"200": _json(body, "the model store"), **_errors(500)},
        }
    }


def _lifecycle_op(view, methods: set[str]) -> dict | None:
    from . import server

    job = _json({"$ref": "#/components/schemas/Job"}, "the background job's id")
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
        answer = {
            "type": "object",
            "required": ["model_version", "metadata"],
            "properties": {
                "model_version": {"type": "integer"},
                "metadata": {"$ref": "#/components/schemas/OkMetadata"},
            },
        }
        op = {
            "summary": "Activate a stored model version",
            "parameters": [
                {
                    "name": "model_version",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer"},
                    "description": "also taken from a form field or a JSON body",
                }
            ],
            "responses": {"200": _json(answer, "activated"), **_errors(400, 404, 500)},
        }
    elif view is server.delete:
        answer = {
            "type": "object",
            "required": ["model_version", "metadata"],
            "properties": {
                "model_version": {"type": "integer"},
                "metadata": {"$ref": "#/components/schemas/OkMetadata"},
            },
        }
        op = {
            "summary": "Delete a stored model version",
            "parameters": [
                {
                    "name": "model_version",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer"},
                    "description": "also taken from a form field or a JSON body",
                }
            ],
            "responses": {"200": _json(answer, "deleted"), **_errors(400, 404, 500)},
        }
    else:
        return None
    name = view.__name__
    return {
        method: {**op, "operationId": f"{name}_{method}", "tags": ["lifecycle"]}
        for method in sorted(m.lower() for m in methods)
    }


def _pipeline_ops(endpoint: str, names: list[str]) -> dict | None:
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
                "200": _json(run_answer, "the pipeline's output"),
                "202": _json(run_answer, "queued as a background job"),
                **_errors(400, 404, 409, 500),
            },
        ),
        "pipelines_load": (
            "post",
            "Load the pipeline's saved op versions",
            [name_param],
            None,
            {"200": _json({"type": "object"}, "loaded"), **_errors(404, 409, 500)},
        ),
        "pipelines_save": (
            "post",
            "Save the pipeline's ops",
            [name_param],
            None,
            {"200": _json({"type": "object"}, "saved"), **_errors(404, 500)},
        ),
        "pipelines_versions": (
            "get",
            "The versions of the pipeline's nodes",
            [name_param],
            None,
            {"200": _json(versions, "node name -> version"), **_errors(404)},
        ),
        "pipelines_pipeline_health": (
            "get",
            "Whether the pipeline is loaded",
            [name_param],
            None,
            {
                "200": _json({"type": "object"}, "loaded"),
                "503": _json({"type": "object"}, "not loaded"),
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
            {"200": _json({"type": "object"}, "the pipeline described"), **_errors(400, 404)},
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


def _generic_ops(rule, view) -> dict:
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


def _openapi_path(rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def openapi_document(app) -> dict:
    """The OpenAPI 3.1 document of ``app`` (a :func:`pipeforge.server.create_app` app)."""
    state = app.extensions["pipeforge"]
    config = state.config
    meta = state.service_metadata
    model = _model_of(state)
    services = dict(state.services)
    pipelines_ext = app.extensions.get("pipeforge_pipelines")
    pipeline_names = sorted(getattr(pipelines_ext, "pipelines", None) or {})
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        endpoint = rule.endpoint
        if endpoint == "static":
            continue
        methods = {m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS")}
        ops = None
        if endpoint.startswith("predict:") and endpoint[8:] in services:
            key = endpoint[8:]
            ops = _predict_ops(key, services[key], model)
        elif endpoint == "alive":
            ops = _alive_op()
        elif endpoint == "list":
            ops = _list_op()
        elif endpoint == "job":
            ops = _job_op()
        elif endpoint in state.views:
            ops = _lifecycle_op(state.views[endpoint], methods)
        elif endpoint.startswith("pipelines") and pipeline_names:
            ops = _pipeline_ops(endpoint, pipeline_names)
        described = app.extensions.get("pipeforge_openapi_ops", {})
        if ops is None and endpoint in described:
            ops = described[endpoint]
            ops = ops() if callable(ops) else ops
            if ops is None:
                continue
        if ops is None:
            ops = _generic_ops(rule, app.view_functions.get(endpoint))
        path = paths.setdefault(_openapi_path(rule), {})
        for method, op in ops.items():
            path.setdefault(method, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": str(meta.get("service_name") or "pipeforge service"),
            "version": str(meta.get("service_version") or "unversioned"),
            "description": (
                f"Generated by pipeforge {__version__} from the running configuration "
                f"({', '.join(getattr(config, 'sources', []) or ['in memory'])})."
            ),
        },
        "paths": paths,
        "components": _components(),
    }


# -- the routes --------------------------------------------------------------------


def describe_route(app, endpoint: str, operations) -> None:
    """Give ``endpoint`` its own entry in the document (instead of a generic one).

    ``operations`` maps lower-case methods to OpenAPI operation objects, or is
    a callable returning that mapping when the document is built; ``None``
    leaves the route out of the document.
    """
    app.extensions.setdefault("pipeforge_openapi_ops", {})[endpoint] = operations


@cache
def _asset(name: str) -> bytes:
    return (resources.files("pipeforge") / "static" / name).read_bytes()


def register_openapi(app, config) -> None:
    """Add ``/openapi.json`` and ``/docs`` to ``app`` as the ``openapi`` config entry says."""
    options = settings(config)
    if options is None:
        return
    from flask import Response, request

    from . import web

    list_name = options["decorator_list_name"]
    openapi_url = options["path"]

    def openapi_json():
        """This document: the running service in OpenAPI 3.1."""
        from flask import current_app

        return web.json_response(openapi_document(current_app))

    app.add_url_rule(
        openapi_url, endpoint="openapi", view_func=decorate(openapi_json, config, list_name)
    )
    describe_route(
        app,
        "openapi",
        {
            "get": {
                "operationId": "openapi",
                "tags": ["service"],
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "the OpenAPI 3.1 document")},
            }
        },
    )
    docs = options.get("docs_path")
    if not docs:
        return
    docs = docs.rstrip("/") or "/docs"
    title = str((config.get("service_metadata") or {}).get("service_name") or "pipeforge")

    def docs_page():
        """The API browser (Swagger UI, served from the package)."""
        from html import escape

        page = _asset("docs.html").decode("utf-8")
        page = page.format(
            title=escape(title),
            assets=escape(docs + "/assets"),
            openapi_url=escape(request.script_root + openapi_url),
        )
        return Response(page, mimetype="text/html")

    def docs_asset(name: str):
        from werkzeug.exceptions import NotFound

        if name not in _ASSETS:
            raise NotFound(f"no asset {name!r}")
        filename, mimetype = _ASSETS[name]
        data = _asset(filename)
        headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
        if filename.endswith(".gz"):
            if "gzip" in request.accept_encodings:
                headers["Content-Encoding"] = "gzip"
            else:
                data = gzip.decompress(data)
        return Response(data, mimetype=mimetype, headers=headers)

    app.add_url_rule(docs, endpoint="docs", view_func=decorate(docs_page, config, list_name))
    app.add_url_rule(
        docs + "/assets/<name>",
        endpoint="docs_asset",
        view_func=decorate(docs_asset, config, list_name),
    )
    describe_route(app, "docs_asset", None)
    describe_route(
        app,
        "docs",
        {
            "get": {
                "operationId": "docs",
                "tags": ["service"],
                "summary": "This API in a browsable page",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
    )
