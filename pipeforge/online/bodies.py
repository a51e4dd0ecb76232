"""Reading the bodies of the online API and writing predictions as JSON.

Each reader raises :class:`~pipeforge.errors.RequestError` (a 400) that says
which field is wrong and what it should be. Predictions kept with an ``id``
are encoded so that class labels keep their JSON type (a ``true`` label
stays a boolean, ``1`` stays a number), which the answer's object keys
cannot do.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import RequestError

__all__ = [
    "plain",
    "encode_prediction",
    "decode_prediction",
    "request_id",
    "model_name",
    "features",
    "model_failed",
]

_MAX_ID = 255


def plain(value: Any) -> Any:
    """A prediction as JSON types (numpy scalars, label keys; non-finite numbers -> None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    item = getattr(value, "item", None)
    if callable(item):
        return plain(item())
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return str(plain(key))


def encode_prediction(prediction: Any) -> str:
    """The prediction kept with an ``id``: class labels keep their JSON type (``true`` stays a bool)."""
    if isinstance(prediction, dict):
        return json.dumps({"p": [[plain(k), plain(v)] for k, v in prediction.items()]})
    return json.dumps({"v": plain(prediction)})


def decode_prediction(text: str) -> Any:
    data = json.loads(text)
    if "p" in data:
        return {label: p for label, p in data["p"]}
    return data.get("v")


def request_id(body: dict[str, Any]) -> str | None:
    if "id" not in body or body["id"] is None:
        return None
    value = body["id"]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RequestError(f"'id' must be a string or an integer; got {_short(value)}")
    key = str(value)
    if not key or len(key) > _MAX_ID:
        raise RequestError(f"'id' must have 1 to {_MAX_ID} characters; got {len(key)}")
    return key


def model_name(body: dict[str, Any]) -> str | None:
    name = body.get("model")
    if name is None:
        return None
    if not isinstance(name, str):
        raise RequestError(f"'model' must be a model name (a string); got {_short(name)}")
    return name


def features(body: dict[str, Any], required: bool) -> dict[str, Any] | None:
    if "features" not in body or body["features"] is None:
        if required:
            raise RequestError("the body needs 'features': an object of feature names and values")
        return None
    value = body["features"]
    if not isinstance(value, dict):
        raise RequestError(
            f"'features' must be an object of feature names and values; got {_short(value)}"
        )
    return value


def _short(value: Any) -> str:
    text = (
        json.dumps(value)
        if isinstance(value, list | dict | str | int | float | bool)
        else repr(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def model_failed(name: str, action: str, exc: Exception) -> RequestError:
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return RequestError(f"model {name!r} cannot {action} these features ({detail})")
