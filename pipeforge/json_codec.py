"""JSON in and out of pipeforge's routes: the encoding rule, with orjson when it is installed.

:mod:`pipeforge.web` documents the rule (numpy, pandas, dates, NaN as
``null``) and re-exports :func:`dumps` and :func:`to_jsonable`; this module
carries it out. With orjson installed (``pip install pipeforge[fast]``)
answers are written by orjson (a model's numeric arrays natively: see
:func:`dumpb`), and request bodies are
read by it; without it, by the standard library's :mod:`json`. Both give the
same values: a client cannot tell which one wrote an answer, except by the
spacing and by non-ASCII text sent as UTF-8 rather than ``\\u`` escapes.

Whatever orjson cannot write the rule's way (a non-string mapping key, an
integer beyond 64 bits, a string holding a lone surrogate, ``NaT`` in a
datetime array) goes the long way: :func:`to_jsonable` first, then the same
writer, or :mod:`json` when orjson still refuses. Whatever orjson cannot read
exactly (not UTF-8, an integer of 20 digits or more, a number out of range,
a lone surrogate, a NaN literal) is read by :mod:`json`, which names the
problem.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # the extra is not installed: the standard library does it all
    _orjson = None  # type: ignore[assignment]  # no orjson: the standard library's json

__all__ = ["CODEC", "dumps", "dumpb", "loads", "to_jsonable"]

#: the library that writes and reads JSON here: ``"orjson"`` or ``"json"``
CODEC = "orjson" if _orjson is not None else "json"

_OPTIONS = (
    _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    if _orjson is not None
    else 0
)
#: numpy arrays written by orjson itself: only for arrays of numbers or booleans (orjson
#: writes a NaT of a datetime64 array as 1970-01-01)
_NUMPY_OPTIONS = _OPTIONS | (_orjson.OPT_SERIALIZE_NUMPY if _orjson is not None else 0)
#: a run of 20 digits: an integer orjson would read as a float (beyond 64 bits)
_LONG_INTEGER = re.compile(rb"\d{20}")


def _datetime64(numpy, value):
    """numpy datetime64 scalars and arrays as ISO strings (``NaT`` -> None)."""
    text = numpy.datetime_as_string(value)
    return _without_nat(text if isinstance(text, str) else text.tolist())


def _without_nat(item):
    if isinstance(item, list):
        return [_without_nat(i) for i in item]
    return None if item == "NaT" else item


def _plain(value) -> Any:
    """One non-JSON value as plain types (one level deep); the writers' ``default``."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray | numpy.generic):
        kind = value.dtype.kind
        if kind == "M":
            return _datetime64(numpy, value)
        if kind == "m":  # timedelta64: seconds as a number
            return (value / numpy.timedelta64(1, "s")).tolist()
        if kind == "f" and value.dtype.itemsize < 8:  # float32: its own shortest decimal
            return value.astype(str).astype(float).tolist()
    if hasattr(value, "columns") and callable(getattr(value, "to_dict", None)):  # DataFrame
        return value.to_dict(orient="records")
    tolist = getattr(value, "tolist", None)  # numpy, pandas Series/Index
    if callable(tolist):
        return tolist()
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time, pd.Timestamp
    if callable(isoformat):
        return isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types following the rule (NaN and infinities -> None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return to_jsonable(_plain(value))


def _key(key) -> str:
    if isinstance(key, str):
        return key
    plain = to_jsonable(key)
    if isinstance(plain, bool) or plain is None:
        return json.dumps(plain)
    return str(plain)


def _stdlib_dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=_plain, allow_nan=False)
    except (ValueError, TypeError):
        return json.dumps(to_jsonable(value), allow_nan=False)


def dumpb(value: Any, *, numeric_arrays: bool = False) -> bytes:
    """Strict JSON of ``value`` as UTF-8 bytes: what an answer's body is.

    ``numeric_arrays``: every numpy array in ``value`` holds numbers or
    booleans (a model's predictions, say), so orjson may write them itself
    instead of as lists.
    """
    if _orjson is not None:
        try:
            options = _NUMPY_OPTIONS if numeric_arrays else _OPTIONS
            return _orjson.dumps(value, default=_plain, option=options)
        except TypeError:  # orjson.JSONEncodeError: see the module docstring
            try:
                return _orjson.dumps(to_jsonable(value), option=_OPTIONS)
            except TypeError:
                pass
    return _stdlib_dumps(value).encode()


def dumps(value: Any) -> str:
    """Strict JSON text for ``value`` (the rule of :mod:`pipeforge.web`).

    Plain data goes straight through the writer (numpy values are converted
    as they come); only when that meets a non-finite number or a non-string
    mapping key is the whole value converted by :func:`to_jsonable` first,
    so the common case pays nothing for the rule.
    """
    if _orjson is not None:
        return dumpb(value).decode()
    return _stdlib_dumps(value)


class NonFinite(ValueError):
    """A NaN or Infinity literal in JSON that was read (strict JSON has none)."""


def _refuse_constant(name: str):
    raise NonFinite(name)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(raw: bytes) -> tuple[Any, str | None]:
    """``(value, text)`` of the JSON document ``raw``; ``text`` is ``None`` when orjson read it.

    Raises :class:`NonFinite` for a NaN or Infinity literal and
    :class:`ValueError` (or ``RecursionError``) for anything that does not
    parse. The text (decoded by the standard library) is handed back so that
    the caller can look for lone surrogates, which orjson refuses itself.
    """
    if _orjson is not None and _LONG_INTEGER.search(raw) is None:
        try:
            return _orjson.loads(raw), None
        except _orjson.JSONDecodeError:
            pass  # the standard library says what is wrong (or reads what orjson cannot)
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _DECODER.decode(text), text
