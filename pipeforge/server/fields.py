"""The typed fields of a predict service: request values checked and converted.

A ``mapping`` names (field, type) pairs with type ``float``, ``int``, ``str``
or ``bool``. Each converter takes the field's name and the raw value (a JSON
value from a POST body, or a string from a query string) and returns the
value the model gets, or raises :class:`~pipeforge.errors.RequestError`
(answered 400) saying which field and what was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ..errors import ConfigError, RequestError

__all__ = ["CONVERTERS", "pairs"]

_INT_LIMIT = 2**63
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_float(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be a number; got {_describe(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise RequestError(f"value of {name!r} must be a number; got {_describe(value)}") from None
    if not math.isfinite(number):
        raise RequestError(f"value of {name!r} must be a finite number; got {_describe(value)}")
    return number


def _to_int(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be an integer; got {_describe(value)}")
    try:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        number = int(value)
    except (ValueError, OverflowError):
        raise RequestError(
            f"value of {name!r} must be an integer; got {_describe(value)}"
        ) from None
    if not -_INT_LIMIT <= number < _INT_LIMIT:
        raise RequestError(f"value of {name!r} is out of the 64-bit range; got {_describe(value)}")
    return number


def _to_str(name: str, value):
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RequestError(f"value of {name!r} must be a string; got {_describe(value)}")


def _to_bool(name: str, value):
    # SPEC section 8: JSON true/false in a POST, true/false/1/0 in a query
    # string (and, leniently, the same strings in a POST). A JSON number is
    # not a boolean.
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise RequestError(
        f"value of {name!r} must be a boolean (JSON true/false, or true/false/1/0 in a "
        f"query string); got {_describe(value)}"
    )


CONVERTERS = {"float": _to_float, "int": _to_int, "str": _to_str, "bool": _to_bool}
_NUMERIC = frozenset({"float", "int"})
_PLAIN_NUMBERS = frozenset({float, int})


def pairs(value, what: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(
            f"parameter '{what}' of PredictService must be a list of (name, type) pairs; "
            f"got {_describe(value)} instead"
        )
    pairs = []
    for item in value:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in CONVERTERS
        ):
            raise ConfigError(
                f"parameter '{what}' of PredictService must hold (name, type) pairs with type "
                f"one of {', '.join(CONVERTERS)}; got {_describe(item)} instead"
            )
        pairs.append((item[0], item[1]))
    return pairs
