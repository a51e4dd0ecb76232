"""The OpenAPI operation objects of the protocol's routes (given to :func:`~..openapi.describe_route`).

A predict service's routes describe its inputs by name (the ``mapping``'s
fields) and the outputs it answers; the routes by name (the online
models) describe the protocol's bodies in general.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .metadata import OUTPUTS
from .tensors import DATATYPES

if TYPE_CHECKING:
    from .service_model import ServiceModel

__all__ = ["server_operations", "model_operations"]

_TAG = "inference protocol"
_ERROR = {
    "type": "object",
    "required": ["error", "metadata"],
    "properties": {
        "error": {"type": "string"},
        "metadata": {"$ref": "#/components/schemas/ErrorMetadata"},
    },
}
_TENSOR_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "datatype": {"enum": list(DATATYPES)},
    "shape": {"type": "array", "items": {"type": "integer"}},
}
_TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": _TENSOR_PROPERTIES,
}
_MODEL_METADATA = {
    "type": "object",
    "required": ["name", "platform", "inputs", "outputs"],
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR_META},
        "outputs": {"type": "array", "items": _TENSOR_META},
        "parameters": {"type": "object"},
    },
}
_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    **_TENSOR_PROPERTIES,
                    "parameters": {"type": "object"},
                    "data": {"type": "array"},
                },
            },
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(_ERROR, "the protocol's error object") for status in statuses}


def _empty(description: str) -> dict[str, Any]:
    return {"description": description}


def server_operations() -> dict[str, dict[str, Any]]:
    """``{endpoint suffix: operations}`` of ``/v2`` and the health routes."""
    server = {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    }

    def get(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "tags": [_TAG],
                "summary": summary,
                "responses": responses,
            }
        }

    return {
        "server": get(
            "v2_server_metadata", "Server metadata", {"200": _json(server, "the server")}
        ),
        "live": get(
            "v2_health_live", "Live (200 while the process answers)", {"200": _empty("live")}
        ),
        "ready": get(
            "v2_health_ready",
            "Ready (200 once every model can answer)",
            {"200": _empty("ready"), **_errors(400)},
        ),
    }


def _request_schema(model: ServiceModel | None) -> dict[str, Any]:
    name: dict[str, Any] = {"type": "string"}
    if model is not None:
        name = {"type": "string", "description": "a field of the mapping, or any name for a matrix"}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": name,
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": list(DATATYPES)},
            "parameters": {"type": "object"},
            "data": {"type": "array"},
        },
    }
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": list(OUTPUTS)},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    }


def model_operations(
    kind: str, model: ServiceModel | None, versioned: bool
) -> dict[str, dict[str, Any]]:
    """The operations of one model route (``kind``: metadata, ready, infer)."""
    who = f"model {model.name!r}" if model is not None else "an online model, by name"
    parameters = []
    if model is None:
        parameters.append(
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if versioned:
        parameters.append(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "a stored version's number",
            }
        )
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", model.name if model is not None else "by_name")
    operation: dict[str, Any] = {
        "operationId": f"v2_{kind}_{slug}{'_version' if versioned else ''}",
        "tags": [_TAG],
    }
    if parameters:
        operation["parameters"] = parameters
    if kind == "metadata":
        operation["summary"] = f"Metadata of {who}"
        operation["responses"] = {"200": _json(_MODEL_METADATA, "the model"), **_errors(404, 503)}
        return {"get": operation}
    if kind == "ready":
        operation["summary"] = f"Whether {who} is ready (200) or not (400)"
        operation["responses"] = {"200": _empty("ready"), **_errors(400, 404)}
        return {"get": operation}
    operation["summary"] = f"Inference with {who}"
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _request_schema(model)}},
    }
    operation["responses"] = {"200": _json(_RESPONSE, "the outputs"), **_errors(400, 404, 503)}
    return {"post": operation}
