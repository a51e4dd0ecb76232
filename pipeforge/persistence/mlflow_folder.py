"""One MLflow model folder, read without MLflow: its ``MLmodel``, its signature, its model.

An MLflow model folder holds an ``MLmodel`` YAML file naming the model's
flavors, and the model's file. pipeforge reads the ``sklearn`` flavor and
the ``python_function`` flavor whose loader is ``mlflow.sklearn`` (the
model's file is the same for both). Its serialization format decides how
the model is loaded:

``skops``                 built by skops, trusting only scikit-learn's and
                          numpy's types and the ``trusted_types`` given (the
                          types the folder itself lists are *not* trusted on
                          its word: whoever wrote it would choose them)
``pickle``, ``cloudpickle``  unpickled only when ``allow_pickle`` is true:
                          unpickling runs whatever code the file names, and
                          an MLflow folder carries no digest pipeforge could
                          check (docs/security.md)

The signature's ``inputs`` (one column per feature) becomes a predict
service's ``mapping``: :func:`mapping_from_signature`. A loaded model
carries both in its ``__metadata__`` (``signature``, ``mapping``), which
:func:`model_mapping` reads back.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, PersistenceError, UntrustedModelError
from ..interfaces import annotate

__all__ = [
    "MLMODEL",
    "SIGNATURE_TYPES",
    "read_mlmodel",
    "sklearn_flavor",
    "parse_signature",
    "mapping_from_signature",
    "model_mapping",
    "folder_metadata",
    "load_model_folder",
]

MLMODEL = "MLmodel"
#: MLflow column types and the predict service's field type each becomes
SIGNATURE_TYPES = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "boolean": "bool",
    "string": "str",
}
#: numpy dtypes of a tensor spec and the field type each becomes
_TENSOR_TYPES = {"float64": "float", "float32": "float", "float16": "float", "bool": "bool"}
_PICKLES = ("pickle", "cloudpickle")


def read_mlmodel(folder: str) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of ``folder``; :class:`PersistenceError` naming the file if none."""
    import yaml

    path = os.path.join(folder, MLMODEL)
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise PersistenceError(f"{folder} is no MLflow model folder: it has no {MLMODEL}") from None
    except yaml.YAMLError as exc:
        raise PersistenceError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise PersistenceError(f"{path} names no flavors; is it an MLflow MLmodel file?")
    return data


def sklearn_flavor(mlmodel: Mapping[str, Any], folder: str) -> tuple[str, str]:
    """``(model file, serialization format)`` of a scikit-learn MLflow model in ``folder``."""
    flavors = mlmodel["flavors"]
    sklearn = flavors.get("sklearn")
    pyfunc = flavors.get("python_function") or {}
    if isinstance(sklearn, dict) and sklearn.get("pickled_model"):
        name, form = sklearn["pickled_model"], sklearn.get("serialization_format") or "cloudpickle"
    elif pyfunc.get("loader_module") == "mlflow.sklearn" and pyfunc.get("model_path"):
        name = pyfunc["model_path"]
        form = "skops" if str(name).endswith(".skops") else "cloudpickle"
    else:
        raise PersistenceError(
            f"the MLflow model in {folder} is not a scikit-learn model (flavors: "
            f"{', '.join(sorted(flavors)) or 'none'}); pipeforge serves the 'sklearn' flavor "
            "and 'python_function' models whose loader_module is mlflow.sklearn"
        )
    if form not in (*_PICKLES, "skops"):
        raise PersistenceError(
            f"the MLflow model in {folder} is stored as {form!r}; pipeforge reads pickle, "
            "cloudpickle and skops"
        )
    path = os.path.normpath(os.path.join(folder, str(name)))
    if os.path.commonpath([path, os.path.abspath(folder)]) != os.path.abspath(folder):
        raise PersistenceError(f"{folder}/{MLMODEL} names a model file outside its folder")
    return path, form


def parse_signature(signature: Any) -> dict[str, Any] | None:
    """An ``MLmodel`` signature with its JSON strings parsed (``inputs``, ``outputs``, ``params``)."""
    if not isinstance(signature, Mapping):
        return None
    parsed: dict[str, Any] = {}
    for key in ("inputs", "outputs", "params"):
        value = signature.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise PersistenceError(f"the MLflow signature's {key} is not JSON") from None
        parsed[key] = value
    return parsed


def mapping_from_signature(signature: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The predict service ``mapping`` that an MLflow signature's ``inputs`` describe.

    ``signature`` is the ``signature`` entry of an ``MLmodel`` file (its
    values JSON strings, as MLflow writes them, or already parsed). A column
    signature gives one ``(name, type)`` pair per column, in order (``double``
    and ``float`` → ``float``, ``long`` and ``integer`` → ``int``,
    ``boolean`` → ``bool``, ``string`` → ``str``); a tensor signature of shape
    ``(-1, n)`` gives ``x0`` ... ``x<n-1>``. Anything else is a
    :class:`ConfigError` that asks for a ``mapping`` in the config.
    """
    parsed = parse_signature(signature) or {}
    inputs = parsed.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ConfigError(
            "the MLflow model has no input signature; give the predict service a 'mapping'"
        )
    if len(inputs) == 1 and inputs[0].get("type") == "tensor" and "name" not in inputs[0]:
        return _tensor_mapping(inputs[0].get("tensor-spec") or {})
    mapping = []
    for column in inputs:
        name, kind = column.get("name"), column.get("type")
        if not isinstance(name, str) or kind not in SIGNATURE_TYPES:
            raise ConfigError(
                f"the MLflow signature's input {name or column!r} of type {kind!r} has no "
                f"predict service type (known: {', '.join(SIGNATURE_TYPES)}); give the "
                "predict service a 'mapping'"
            )
        mapping.append((name, SIGNATURE_TYPES[kind]))
    return mapping


def _tensor_mapping(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    shape, dtype = spec.get("shape"), str(spec.get("dtype"))
    kind = _TENSOR_TYPES.get(dtype, "int" if dtype.startswith(("int", "uint")) else None)
    if not isinstance(shape, list) or len(shape) != 2 or not shape[1] or shape[1] < 1 or not kind:
        raise ConfigError(
            f"the MLflow signature's input is a tensor of shape {shape} and type {dtype}; "
            "pipeforge maps (-1, n) tensors of numbers only: give the predict service a 'mapping'"
        )
    return [(f"x{i}", kind) for i in range(shape[1])]


def model_mapping(model: Any) -> list[tuple[str, str]] | None:
    """The mapping an MLflow model's signature gave it (``__metadata__["mapping"]``), or ``None``."""
    metadata = getattr(model, "__metadata__", None) or {}
    mapping = metadata.get("mapping")
    if not isinstance(mapping, list) or not mapping:
        return None
    return [(str(name), str(kind)) for name, kind in mapping]


def _timestamp(mlmodel: Mapping[str, Any]) -> str | None:
    created = mlmodel.get("utc_time_created")
    if not created:
        return None
    try:
        when = datetime.fromisoformat(str(created)).replace(tzinfo=timezone.utc)
    except ValueError:
        return str(created)
    return when.isoformat(timespec="seconds")


def folder_metadata(folder: str, mlmodel: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What pipeforge lists for the MLflow model in ``folder`` (no ``version`` yet).

    ``train_timestamp`` (when MLflow saved it), ``library_versions`` (those
    the model was saved with), ``mlflow`` (format and MLflow's own ids),
    ``signature`` and ``mapping`` where the model has a signature that maps,
    and what pipeforge metadata an exported folder kept.
    """
    mlmodel = read_mlmodel(folder) if mlmodel is None else mlmodel
    path, form = sklearn_flavor(mlmodel, folder)
    flavors = mlmodel["flavors"]
    sklearn = flavors.get("sklearn") or {}
    pyfunc = flavors.get("python_function") or {}
    extra = mlmodel.get("metadata")
    metadata: dict[str, Any] = dict(extra.get("pipeforge") or {}) if isinstance(extra, dict) else {}
    versions = {
        "python": pyfunc.get("python_version"),
        "scikit-learn": sklearn.get("sklearn_version"),
    }
    metadata["library_versions"] = {
        **(metadata.get("library_versions") or {}),
        **{k: str(v) for k, v in versions.items() if v},
    }
    metadata["train_timestamp"] = metadata.get("train_timestamp") or _timestamp(mlmodel)
    metadata["mlflow"] = {
        "folder": folder,
        "model_file": os.path.basename(path),
        "serialization_format": form,
        **{k: mlmodel[k] for k in ("mlflow_version", "model_uuid", "run_id") if mlmodel.get(k)},
    }
    signature = parse_signature(mlmodel.get("signature"))
    if signature is not None:
        metadata["signature"] = signature
        try:
            metadata["mapping"] = [list(pair) for pair in mapping_from_signature(signature)]
        except ConfigError:
            metadata.pop("mapping", None)  # the config must give one
    return {k: v for k, v in metadata.items() if v is not None}


def load_model_folder(
    folder: str, *, trusted_types: Iterable[str] = (), allow_pickle: bool = False
) -> Any:
    """The scikit-learn model of the MLflow folder ``folder``, with its metadata annotated.

    A skops file is built trusting only skops' defaults and
    ``trusted_types``; a pickle or cloudpickle file is refused with
    :class:`~pipeforge.errors.UntrustedModelError` unless ``allow_pickle``.
    """
    mlmodel = read_mlmodel(folder)
    path, form = sklearn_flavor(mlmodel, folder)
    if form == "skops":
        from .skops_format import load_skops

        with _open(path) as handle:
            model = load_skops(handle, list(trusted_types))
    elif not allow_pickle:
        raise UntrustedModelError(
            f"the MLflow model in {folder} is a {form} file, and unpickling runs the code it "
            "names; set 'allow_pickle: true' on the persister if you trust everyone who can "
            "write there, or save the model with serialization_format='skops'"
        )
    else:
        with _open(path) as handle:
            model = _unpickle(handle, path)
    annotate(model, folder_metadata(folder, mlmodel))
    return model


def _open(path: str) -> Any:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise PersistenceError(f"the MLflow model file {path} is missing") from None


def _unpickle(handle: Any, path: str) -> Any:
    try:
        return pickle.load(handle)
    except ModuleNotFoundError as exc:
        hint = (
            "install it with: pip install 'pipeforge[mlflow]'"
            if exc.name == "cloudpickle"
            else "install it, or make the module the model was pickled with importable"
        )
        raise PersistenceError(f"{path} needs the module {exc.name!r} to load; {hint}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise PersistenceError(f"{path} cannot be unpickled: {exc}") from None
