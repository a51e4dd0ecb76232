"""Reading the bodies of the online API and writing predictions as JSON.

Each reader raises :class:`~pipeforge.errors.RequestError` (a 400) that says
which field is wrong and what it should be. Predictions kept with an ``id``
are encoded so that class labels keep their JSON type (a ``true`` label
stays a boolean, ``1`` stays a number), which the answer's object keys
cannot do.

What reaches a model is bounded first (:class:`InputLimits`, the ``online``
config entry): numbers are finite and at most ``max_magnitude`` away from
zero (also integers like ``10**400``, which JSON allows), a request has at
most ``max_features`` features, names are at most :data:`MAX_TEXT`
characters, and every string is valid Unicode (a lone surrogate such as
``"\\ud800"``, which JSON can spell, cannot be stored).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError

__all__ = [
    "InputLimits",
    "MAX_TEXT",
    "plain",
    "encode_prediction",
    "decode_prediction",
    "request_id",
    "model_name",
    "features",
    "check_features",
    "check_number",
    "check_text",
    "prediction",
    "model_failed",
]

_MAX_ID = 255
#: the longest feature name or class label, in characters
MAX_TEXT = 255


@dataclass(frozen=True)
class InputLimits:
    """How large the inputs of the online API may be (the ``online`` config entry's ``max_*`` keys).

    ``max_magnitude`` bounds every number (features, ground truths,
    predictions sent with a learn): 1e15 holds epoch milliseconds and sums of
    money in cents, and its square (1e30) is still far from a float's limit
    (1.8e308), so one sample cannot overflow a model's arithmetic.
    ``max_features`` bounds the features of one request,
    ``max_model_features`` the feature names one model may know
    (see :mod:`pipeforge.online.safety`).
    """

    max_magnitude: float = 1e15
    max_features: int = 1000
    max_model_features: int = 10_000


def check_text(value: str, what: str) -> str:
    """``value`` if it encodes as UTF-8; a 400 naming ``what`` for a lone surrogate."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(
            f"{what} is not valid Unicode (it holds a lone surrogate such as \\ud800)"
        ) from None
    return value


def check_number(value: int | float, what: str, limits: InputLimits) -> int | float:
    """``value`` if it is finite and within ``limits.max_magnitude``; else a 400 naming ``what``."""
    # ints compare with floats exactly (no overflow for 10**400); NaN fails both comparisons
    if not -limits.max_magnitude <= value <= limits.max_magnitude:
        raise RequestError(
            f"{what} must be a finite number between -{limits.max_magnitude:g} and "
            f"{limits.max_magnitude:g} (online.max_magnitude); got {_short(value)}"
        )
    return value


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
    if isinstance(value, int) and not -(10**_MAX_ID) < value < 10**_MAX_ID:
        raise RequestError(f"'id' must have 1 to {_MAX_ID} characters; got a longer integer")
    key = str(value)
    if not key or len(key) > _MAX_ID:
        raise RequestError(f"'id' must have 1 to {_MAX_ID} characters; got {len(key)}")
    return check_text(key, "'id'")


def model_name(body: dict[str, Any]) -> str | None:
    name = body.get("model")
    if name is None:
        return None
    if not isinstance(name, str):
        raise RequestError(f"'model' must be a model name (a string); got {_short(name)}")
    return check_text(name, "'model'")


def features(
    body: dict[str, Any], required: bool, limits: InputLimits | None = None
) -> dict[str, Any] | None:
    """The body's ``features``, checked against ``limits`` (the defaults when ``None``)."""
    if "features" not in body or body["features"] is None:
        if required:
            raise RequestError("the body needs 'features': an object of feature names and values")
        return None
    value = body["features"]
    if not isinstance(value, dict):
        raise RequestError(
            f"'features' must be an object of feature names and values; got {_short(value)}"
        )
    return check_features(value, limits or _DEFAULT_LIMITS)


def check_features(value: dict[str, Any], limits: InputLimits) -> dict[str, Any]:
    """``value`` if each name and value may reach a model (see the module doc); else a 400."""
    if len(value) > limits.max_features:
        raise RequestError(
            f"'features' has {len(value)} features; a request may have at most "
            f"{limits.max_features} (online.max_features)"
        )
    bound = limits.max_magnitude
    for name, item in value.items():
        if len(name) > MAX_TEXT:
            raise RequestError(
                f"feature names have at most {MAX_TEXT} characters; got one of {len(name)}"
            )
        if not name.isascii():
            check_text(name, "a feature name")
        kind = type(item)
        if kind is float or kind is int:  # the usual case, checked without a call
            if not -bound <= item <= bound:
                check_number(item, f"feature {name!r}", limits)
        elif isinstance(item, float | int) and not isinstance(item, bool):
            check_number(item, f"feature {name!r}", limits)
        elif isinstance(item, str):
            if not item.isascii():
                check_text(item, f"feature {name!r}")
        elif not (item is None or isinstance(item, bool)):
            raise RequestError(
                f"feature {name!r} must be a number, a string, true/false or null; "
                f"got {_short(item)}"
            )
    return value


def prediction(body: dict[str, Any], flavor: str, limits: InputLimits) -> Any:
    """The ``prediction`` a learn's body gives for its metrics (``None`` when it gives none).

    A regression model's is a finite number; a classifier's a label or an
    object of labels and probabilities.
    """
    value = body.get("prediction")
    if value is None:
        return None
    what = "'prediction'"
    if flavor == "regression":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(
                f"{what} of a regression model must be a finite number; got {_short(value)}"
            )
        return check_number(value, what, limits)
    if isinstance(value, Mapping):
        if len(value) > limits.max_features:
            raise RequestError(f"{what} has more than {limits.max_features} classes")
        for label, p in value.items():
            _label(label, what, limits)
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                raise RequestError(
                    f"{what} must give each class a probability between 0 and 1; "
                    f"got {_short(p)} for {label!r}"
                )
        return value
    return _label(value, what, limits)


def _label(value: Any, what: str, limits: InputLimits) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise RequestError(f"{what}: a class label has at most {MAX_TEXT} characters")
        return check_text(value, what)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return check_number(value, what, limits)
    raise RequestError(
        f"{what} of a classifier must be a label (string, number, true/false) or an object "
        f"of labels and probabilities; got {_short(value)}"
    )


_DEFAULT_LIMITS = InputLimits()


def _short(value: Any) -> str:
    if isinstance(value, int) and not -(10**50) < value < 10**50:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
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
