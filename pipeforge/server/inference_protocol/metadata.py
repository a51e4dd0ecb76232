"""The protocol's metadata objects: of the server (``GET /v2``) and of a model.

A predict service's model metadata describes its inputs from its
``mapping`` (one tensor per field: ``float`` is ``FP64``, ``int`` ``INT64``,
``str`` ``BYTES``, ``bool`` ``BOOL``; shape ``[-1]``, any number of rows),
its outputs from the served model (``predict``: the labels, typed as the
model's ``classes_``, numbers for a regressor; ``predict_proba``: one
``FP64`` column per class, when the model has ``predict_proba``), its
platform (the package of the model's class, e.g. ``sklearn``) and the
stored versions. An online model names no inputs: it takes whatever
features it is sent, each as a tensor named by the feature.
"""

from __future__ import annotations

from typing import Any

from ... import __version__
from .samples import DATATYPES_OF_FIELDS
from .tensors import datatype_of

__all__ = ["OUTPUTS", "server_metadata", "service_model_metadata", "online_model_metadata"]

#: the outputs a request may ask for by name (MLServer's scikit-learn runtime's names)
OUTPUTS = ("predict", "predict_proba")


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: the server's name, version and protocol extensions (none)."""
    return {"name": "pipeforge", "version": __version__, "extensions": []}


def _platform(model: Any) -> str:
    return (type(model).__module__ or "").split(".")[0]


def _classes(model: Any) -> Any:
    return getattr(model, "classes_", None)


def service_model_metadata(
    name: str,
    fields: list[tuple[str, str]],
    model: Any,
    versions: list[str],
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """The metadata of a predict service's model ``name`` serving ``model``."""
    classes = _classes(model)
    label_type = "FP64" if classes is None else datatype_of(getattr(classes, "dtype", None))
    outputs = [{"name": "predict", "datatype": label_type, "shape": [-1, 1]}]
    if callable(getattr(model, "predict_proba", None)):
        width = -1 if classes is None else len(classes)
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": name,
        "versions": versions,
        "platform": _platform(model),
        "inputs": [
            {"name": field, "datatype": DATATYPES_OF_FIELDS[kind], "shape": [-1]}
            for field, kind in fields
        ],
        "outputs": outputs,
        "parameters": parameters,
    }


def online_model_metadata(name: str, flavor: str) -> dict[str, Any]:
    """The metadata of the online model ``name`` of ``flavor``."""
    outputs = [{"name": "predict", "datatype": "FP64" if flavor == "regression" else "BYTES"}]
    if flavor != "regression":
        outputs.append({"name": "predict_proba", "datatype": "FP64"})
    return {
        "name": name,
        "versions": [],
        "platform": "pipeforge-online",
        "inputs": [],
        "outputs": [
            {**output, "shape": [-1, -1 if "proba" in output["name"] else 1]} for output in outputs
        ],
        "parameters": {"flavor": flavor},
    }
