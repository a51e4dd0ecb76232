"""The typed fields of a predict service: request values checked and converted.

A ``mapping`` names (field, type) pairs with type ``float``, ``int``, ``str``
or ``bool``. Each converter takes the field's name and the raw value (a JSON
value from a POST body, or a string from a query string) and returns the
value the model gets, or raises :class:`~pipeforge.errors.RequestError`
(answered 400) saying which field and what was wrong.
"""

from __future__ import annotations

import difflib
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from ..errors import ConfigError, RequestError
from ..web import parse_flag

__all__ = [
    "KnownFields",
    "check_fields",
    "CONVERTERS",
    "NUMERIC_TYPES",
    "PLAIN_NUMBERS",
    "describe",
    "float_rows",
    "pairs",
    "to_bool",
    "to_float",
    "to_int",
    "to_str",
]

_INT_LIMIT = 2**63


def describe(value: Any) -> str:
    """``repr(value)``, cut to 60 characters: how an error message shows what it got."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_float(name: str, value: Any) -> float:
    """A finite number (a JSON number, or its text in a query string)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be a number; got {describe(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise RequestError(f"value of {name!r} must be a number; got {describe(value)}") from None
    if not math.isfinite(number):
        raise RequestError(f"value of {name!r} must be a finite number; got {describe(value)}")
    return number


def to_int(name: str, value: Any) -> int:
    """A 64-bit integer (a JSON number without a fraction, or its text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"value of {name!r} must be an integer; got {describe(value)}")
    try:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            value = int(value)
        number = int(value)
    except (ValueError, OverflowError):
        raise RequestError(f"value of {name!r} must be an integer; got {describe(value)}") from None
    if not -_INT_LIMIT <= number < _INT_LIMIT:
        raise RequestError(f"value of {name!r} is out of the 64-bit range; got {describe(value)}")
    return number


def to_str(name: str, value: Any) -> str:
    """A string that encodes as UTF-8 (a JSON number is taken as its text)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                f"value of {name!r} must be text that encodes as UTF-8; it holds a lone "
                f"surrogate: {describe(value)}"
            ) from None
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RequestError(f"value of {name!r} must be a string; got {describe(value)}")


#: a boolean field: the flag rule of the HTTP boundary (:func:`pipeforge.web.parse_flag`)
to_bool = parse_flag

CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "float": to_float,
    "int": to_int,
    "str": to_str,
    "bool": to_bool,
}
#: the field types whose samples make a numeric array
NUMERIC_TYPES = frozenset({"float", "int"})
#: the Python types of plain JSON numbers (the bulk path of all-float mappings)
PLAIN_NUMBERS = frozenset({float, int})


def pairs(value: Any, what: str) -> list[tuple[str, str]]:
    """A ``mapping`` or ``params`` parameter as (name, type) pairs; :class:`ConfigError` if not."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(
            f"parameter '{what}' of PredictService must be a list of (name, type) pairs; "
            f"got {describe(value)} instead"
        )
    found = []
    for item in value:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in CONVERTERS
        ):
            raise ConfigError(
                f"parameter '{what}' of PredictService must hold (name, type) pairs with type "
                f"one of {', '.join(CONVERTERS)}; got {describe(item)} instead"
            )
        found.append((item[0], item[1]))
    return found


class KnownFields(NamedTuple):
    """The request fields of a strict predict service: its ``mapping`` and its ``params``."""

    mapping: frozenset[str]
    params: frozenset[str]


def check_fields(
    known: KnownFields, query: Iterable[Any], samples: Iterable[Any] | None = None
) -> None:
    """Raise a :class:`RequestError` (400) naming the first field a strict service does not know.

    ``query`` holds the query parameters (of a GET: the mapping's fields and
    the params; of a POST, whose ``samples`` are given: the params only);
    each sample that is a dict may hold the mapping's fields only.
    """
    allowed = known.params if samples is not None else known.mapping | known.params
    for name in query:
        if name not in allowed:
            raise RequestError(_unknown("query parameter", name, allowed))
    fields = known.mapping
    for index, sample in enumerate(samples or ()):
        if isinstance(sample, dict) and not fields.issuperset(sample):
            name = next(name for name in sample if name not in fields)
            raise RequestError(f"sample {index}: " + _unknown("field", name, fields))


def _unknown(what: str, name: Any, allowed: Iterable[str]) -> str:
    known = sorted(allowed)
    text = f"unknown {what} {describe(name)}"
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    if close:
        text += f"; did you mean {close[0]!r}?"
    shown = ", ".join(repr(k) for k in known[:20]) + (", ..." if len(known) > 20 else "")
    return text + (f" (this service takes {shown})" if known else " (this service takes none)")


def float_rows(names: list[str], payload: list) -> Any:
    """POSTed samples of plain JSON numbers as one float array (C loops); ``None`` if not that simple.

    Anything unusual (a missing key, a string, a bool, null, NaN) returns
    ``None`` and takes the per-value path, which says what is wrong.
    """
    import numpy as np

    pick = operator.itemgetter(*names)
    try:
        rows = list(map(pick, payload))  # runs for every POST
    except (KeyError, TypeError, IndexError):
        return None
    if len(names) == 1:
        rows = [(value,) for value in rows]
    if not set(map(type, itertools.chain.from_iterable(rows))) <= PLAIN_NUMBERS:
        return None
    try:
        X = np.array(rows, dtype=float)
    except (OverflowError, ValueError):
        return None
    if not np.isfinite(X).all():
        return None
    return X
