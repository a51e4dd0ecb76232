"""Input tensors as a predict service's samples: one row per request row, one value per field.

A predict service's ``mapping`` names its fields; a request gives them in
one of two forms:

- **one tensor per field**, named as the field, of shape ``[rows]`` or
  ``[rows, 1]`` (every field, no other input, the same rows in each);
- **one matrix** of shape ``[rows, fields]``, whatever its name, its
  columns in the mapping's order (what MLServer's scikit-learn runtime
  takes: ``FP64`` numbers for an all-float mapping).

Each tensor's datatype must suit its field (:data:`ACCEPTS`), and each value
goes through the field's converter (:data:`pipeforge.server.fields.CONVERTERS`),
the same rules as ``/predict``'s. An all-float mapping given numbers is
turned into one float array at once.
"""

from __future__ import annotations

from typing import Any

from ...errors import RequestError
from ..fields import CONVERTERS
from .tensors import NUMERIC, Tensor

__all__ = ["ACCEPTS", "DATATYPES_OF_FIELDS", "rows_of"]

#: field type -> the datatypes a tensor for it may have
ACCEPTS: dict[str, frozenset[str]] = {
    "float": NUMERIC,
    "int": NUMERIC,  # a floating-point value must be whole (the converter says so)
    "str": frozenset({"BYTES"}),
    "bool": frozenset({"BOOL"}),
}
#: field type -> the datatype a field is described with (model metadata)
DATATYPES_OF_FIELDS = {"float": "FP64", "int": "INT64", "str": "BYTES", "bool": "BOOL"}


def rows_of(fields: list[tuple[str, str]], tensors: list[Tensor]) -> Any:
    """The samples (a list of rows, or a float array) that ``tensors`` give for ``fields``."""
    names = [name for name, _ in fields]
    if len(tensors) == 1 and (tensors[0].name not in names or len(tensors[0].shape) == 2):
        matrix = tensors[0]
        if matrix.name not in names or len(names) > 1:
            return _from_matrix(fields, matrix)
    return _from_columns(fields, tensors)


def _from_matrix(fields: list[tuple[str, str]], tensor: Tensor) -> Any:
    width = len(fields)
    if len(tensor.shape) != 2 or tensor.shape[1] != width or tensor.shape[0] == 0:
        raise RequestError(
            f"input {tensor.name!r}: give one tensor per field "
            f"({', '.join(name for name, _ in fields)}), or one matrix of shape "
            f"[rows, {width}] with a column per field in that order; got shape {list(tensor.shape)}"
        )
    for name, kind in fields:
        _check_datatype(tensor, name, kind)
    rows = tensor.shape[0]
    if all(kind == "float" for _, kind in fields):
        array = _floats(tensor.values)
        if array is not None:
            return array.reshape(rows, width)
    values = tensor.values
    converters = [(name, CONVERTERS[kind]) for name, kind in fields]
    return [
        [
            convert(name, values[row * width + column])
            for column, (name, convert) in enumerate(converters)
        ]
        for row in range(rows)
    ]


def _from_columns(fields: list[tuple[str, str]], tensors: list[Tensor]) -> Any:
    by_name = {tensor.name: tensor for tensor in tensors}
    known = {name for name, _ in fields}
    for tensor in tensors:
        if tensor.name not in known:
            raise RequestError(
                f"unknown input {tensor.name!r}: this model takes one tensor per field "
                f"({', '.join(name for name, _ in fields)}), or one matrix of shape "
                f"[rows, {len(fields)}]"
            )
    missing = [name for name, _ in fields if name not in by_name]
    if missing:
        raise RequestError(f"missing input {missing[0]!r}: give one tensor per field")
    rows = None
    for name, kind in fields:
        tensor = by_name[name]
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise RequestError(
                f"input {name!r}: a field's tensor has shape [rows] or [rows, 1]; "
                f"got {list(tensor.shape)}"
            )
        if rows is None:
            rows = tensor.shape[0]
        elif tensor.shape[0] != rows:
            raise RequestError(
                f"input {name!r} has {tensor.shape[0]} rows but the inputs before it {rows}; "
                "every field needs a value in each row"
            )
        _check_datatype(tensor, name, kind)
    if not rows:
        raise RequestError("the inputs hold no rows; send at least one")
    columns = [by_name[name].values for name, _ in fields]
    if all(kind == "float" for _, kind in fields):
        arrays = [_floats(column) for column in columns]
        if all(array is not None for array in arrays):
            import numpy as np

            return np.column_stack(arrays)
    converted = [
        [CONVERTERS[kind](name, value) for value in column]
        for (name, kind), column in zip(fields, columns, strict=True)
    ]
    return [list(row) for row in zip(*converted, strict=True)]


def _check_datatype(tensor: Tensor, name: str, kind: str) -> None:
    if tensor.datatype not in ACCEPTS[kind]:
        wanted = "a number type (FP64, FP32, INT64, ...)" if kind in ("float", "int") else None
        wanted = wanted or DATATYPES_OF_FIELDS[kind]
        raise RequestError(
            f"input {tensor.name!r} is {tensor.datatype}, but field {name!r} ({kind}) takes {wanted}"
        )


def _floats(values: list[Any]) -> Any:
    """``values`` as a float array, or ``None`` when one is out of float's range."""
    import numpy as np

    try:
        array = np.asarray(values, dtype=float)
    except (OverflowError, ValueError):
        return None
    return array if np.isfinite(array).all() else None
