"""The protocol's tensors in JSON: an inference request's inputs read and checked, outputs written.

A tensor is ``{"name", "shape", "datatype", "data"}`` (and optional
``parameters``): ``data`` holds the elements in row-major order, flat or
nested as the shape, and must hold exactly as many as the shape says.
Each element must fit the datatype: ``BOOL`` takes ``true``/``false``, the
integer types (``INT8`` ... ``UINT64``) whole numbers in their range, the
floating-point types (``FP16``, ``FP32``, ``FP64``) numbers, ``BYTES``
strings. Every request that breaks a rule is a
:class:`~pipeforge.errors.RequestError` (400) naming the input and what
was wrong.

Outputs are written as MLServer writes them, so clients of either read
the same answer: a one-dimensional result (predicted labels) becomes a
column (shape ``[rows, 1]``), the datatype follows the numpy dtype
(strings are ``BYTES``), and each output carries
``"parameters": {"content_type": "np"}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import RequestError
from ..fields import describe

__all__ = [
    "DATATYPES",
    "NUMERIC",
    "Tensor",
    "read_inputs",
    "read_outputs",
    "output_tensor",
    "datatype_of",
]

_INT_RANGES = {
    "INT8": (-(2**7), 2**7),
    "INT16": (-(2**15), 2**15),
    "INT32": (-(2**31), 2**31),
    "INT64": (-(2**63), 2**63),
    "UINT8": (0, 2**8),
    "UINT16": (0, 2**16),
    "UINT32": (0, 2**32),
    "UINT64": (0, 2**64),
}
_FLOATS = ("FP16", "FP32", "FP64")
#: every datatype of the protocol
DATATYPES: tuple[str, ...] = ("BOOL", *_INT_RANGES, *_FLOATS, "BYTES")
#: the datatypes whose elements are numbers
NUMERIC = frozenset((*_INT_RANGES, *_FLOATS))
_MAX_DIMS = 8
_NUMBER_TYPES = frozenset({int, float})


@dataclass(frozen=True)
class Tensor:
    """One input tensor of a request, checked: ``values`` is its data, flat and row-major."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    values: list[Any]

    @property
    def rows(self) -> int:
        """The size of the first dimension (1 for a scalar)."""
        return self.shape[0] if self.shape else 1


def read_inputs(body: Mapping[str, Any]) -> list[Tensor]:
    """The ``inputs`` of an inference request, each checked (see the module docstring)."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(
            "the request needs 'inputs': a list of tensors, each "
            '{"name", "shape", "datatype", "data"}; '
            f"got {'none' if inputs is None else describe(inputs)}"
        )
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for index, raw in enumerate(inputs):
        tensor = _tensor(raw, index)
        if tensor.name in seen:
            raise RequestError(f"inputs[{index}]: the input {tensor.name!r} is given twice")
        seen.add(tensor.name)
        tensors.append(tensor)
    return tensors


def read_outputs(body: Mapping[str, Any], known: tuple[str, ...]) -> list[str] | None:
    """The output names a request asks for (``None``: not said), each one of ``known``."""
    outputs = body.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise RequestError(
            f"'outputs' must be a list of {{\"name\": ...}} objects; got {describe(outputs)}"
        )
    names: list[str] = []
    for index, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise RequestError(
                f"outputs[{index}] must be an object with a 'name'; got {describe(item)}"
            )
        if name not in known:
            raise RequestError(
                f"outputs[{index}]: unknown output {name!r}; this model has "
                f"{', '.join(repr(k) for k in known)}"
            )
        if name not in names:
            names.append(name)
    return names


def _tensor(raw: Any, index: int) -> Tensor:
    where = f"inputs[{index}]"
    if not isinstance(raw, dict):
        raise RequestError(f"{where} must be an object; got {describe(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where} needs a 'name' (a string); got {describe(name)}")
    where = f"input {name!r}"
    shape = raw.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise RequestError(
            f"{where}: 'shape' must be a list of at most {_MAX_DIMS} sizes (whole numbers "
            f">= 0); got {describe(shape)}"
        )
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise RequestError(
            f"{where}: 'datatype' must be one of {', '.join(DATATYPES)}; got {describe(datatype)}"
        )
    if "data" not in raw:
        raise RequestError(f"{where} needs 'data' (its elements in row-major order)")
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise RequestError(f"{where}: 'parameters' must be an object; got {describe(parameters)}")
    values = _flat(raw["data"], where)
    size = math.prod(shape)
    if len(values) != size:
        raise RequestError(
            f"{where}: shape {shape} holds {size} elements but 'data' has {len(values)}"
        )
    _check_elements(values, datatype, where)
    return Tensor(name, tuple(shape), datatype, values)


def _flat(data: Any, where: str) -> list[Any]:
    """``data`` as one flat list (nested lists are taken in row-major order)."""
    if not isinstance(data, list):
        return [data]
    if not any(type(item) is list for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > _MAX_DIMS:
                    raise RequestError(f"{where}: 'data' is nested deeper than {_MAX_DIMS} levels")
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _check_elements(values: list[Any], datatype: str, where: str) -> None:
    kinds = set(map(type, values))
    if datatype == "BYTES":
        if kinds <= {str}:
            return
        wanted = "strings"
    elif datatype == "BOOL":
        if kinds <= {bool}:
            return
        wanted = "true or false"
    elif datatype in _FLOATS:
        if kinds <= _NUMBER_TYPES:
            return
        wanted = "numbers"
    else:
        low, high = _INT_RANGES[datatype]
        if kinds <= _NUMBER_TYPES and (
            float not in kinds or all(v.is_integer() for v in values if type(v) is float)
        ):
            if not values or low <= min(values) and max(values) < high:
                return
        wanted = f"whole numbers from {low} to {high - 1}"
    bad = next(v for v in values if not _fits(v, datatype))
    raise RequestError(f"{where}: a {datatype} tensor holds {wanted}; got {describe(bad)}")


def _fits(value: Any, datatype: str) -> bool:
    kind = type(value)
    if datatype == "BYTES":
        return kind is str
    if datatype == "BOOL":
        return kind is bool
    if kind not in _NUMBER_TYPES:
        return False
    if datatype in _FLOATS:
        return True
    low, high = _INT_RANGES[datatype]
    return (kind is int or value.is_integer()) and low <= value < high


def datatype_of(dtype: Any) -> str:
    """The protocol's datatype for a numpy dtype (strings and objects are ``BYTES``)."""
    kind = getattr(dtype, "kind", "O")
    size = getattr(dtype, "itemsize", 8)
    if kind == "b":
        return "BOOL"
    if kind == "i":
        return f"INT{size * 8}"
    if kind == "u":
        return f"UINT{size * 8}"
    if kind == "f" and size in (2, 4, 8):
        return f"FP{size * 8}"
    if kind == "f":
        return "FP64"
    return "BYTES"


def output_tensor(name: str, result: Any) -> dict[str, Any]:
    """The output tensor ``name`` of a result with one row per request row."""
    import numpy as np

    array = np.asarray(result)
    if array.dtype.kind == "f" and array.dtype.itemsize not in (2, 4, 8):
        array = array.astype(np.float64)
    if array.dtype.kind == "O":
        array = _plain_objects(array)
    if array.ndim <= 1:
        array = array.reshape(-1, 1)
    datatype = datatype_of(array.dtype)
    data = array.ravel().tolist()
    if datatype == "BYTES":
        data = [item if isinstance(item, str) else _text(item) for item in data]
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"content_type": "np"},
        "data": data,
    }


def _plain_objects(array: Any) -> Any:
    """An object array as the array numpy makes of its items (labels of one type: their dtype)."""
    import numpy as np

    items = array.ravel().tolist()
    kinds = set(map(type, items))
    if kinds and (kinds <= {bool} or kinds <= {int} or kinds <= _NUMBER_TYPES):
        try:
            return np.array(items).reshape(array.shape)
        except (OverflowError, ValueError):
            pass
    return array


def _text(item: Any) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return str(item)
