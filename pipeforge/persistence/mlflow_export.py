"""A stored model written as an MLflow model folder that ``mlflow models serve`` accepts.

:func:`write_mlflow_folder` writes, without MLflow, what
``mlflow.sklearn.save_model`` would: the ``sklearn`` and
``python_function`` flavors in ``MLmodel``, the model file (pickle by
default; ``cloudpickle`` or ``skops`` on request), the environment files
(``requirements.txt``, ``python_env.yaml``, ``conda.yaml``) pinned to the
library versions stored with the model, and a column signature made from
the predict service's ``mapping``. pipeforge's own metadata (version,
scores, ...) rides along under the ``metadata: pipeforge:`` key of
``MLmodel``, which MLflow keeps and :class:`MLflowModels` reads back.

The folder is written beside its target under a temporary name and moved
into place, so a failed export leaves nothing; an existing non-empty
target is refused, as MLflow refuses it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, ModelWriteError, PersistenceError
from .mlflow_folder import MLMODEL
from .storage import json_default

__all__ = ["EXPORT_FORMATS", "signature_from_mapping", "write_mlflow_folder"]

#: the serialization formats an export can write
EXPORT_FORMATS = ("pickle", "cloudpickle", "skops")
#: the MLflow column type of each predict service field type
_COLUMN_TYPES = {"float": "double", "int": "long", "bool": "boolean", "str": "string"}


def signature_from_mapping(mapping: Iterable[Any]) -> dict[str, str | None]:
    """The ``MLmodel`` signature (JSON strings, as MLflow writes them) of a predict service ``mapping``."""
    columns = []
    for pair in mapping:
        name, kind = pair
        if kind not in _COLUMN_TYPES:
            raise ConfigError(
                f"the mapping's field {name!r} has type {kind!r}, which has no MLflow column "
                f"type (known: {', '.join(_COLUMN_TYPES)})"
            )
        columns.append({"type": _COLUMN_TYPES[kind], "name": str(name), "required": True})
    if not columns:
        raise ConfigError("the mapping names no fields; an MLflow signature needs at least one")
    return {"inputs": json.dumps(columns), "outputs": None, "params": None}


def _versions(metadata: Mapping[str, Any], form: str) -> dict[str, str]:
    """The versions the environment files pin: those stored with the model, else the running ones."""
    from importlib import metadata as dists

    import sklearn

    stored = metadata.get("library_versions") or {}
    versions = {
        "python": str(stored.get("python") or platform.python_version()),
        "scikit-learn": str(stored.get("scikit-learn") or sklearn.__version__),
    }
    if form in ("cloudpickle", "skops"):
        versions[form] = dists.version(form)
    return versions


def _dump(model: Any, path: str, form: str) -> list[str] | None:
    """Write ``model`` to ``path`` in ``form``; the skops types it needs trusted (or ``None``)."""
    with open(path, "xb") as handle:
        if form == "pickle":
            pickle.dump(model, handle, protocol=pickle.DEFAULT_PROTOCOL)
            return None
        if form == "cloudpickle":
            import importlib

            try:  # cloudpickle ships no type information: imported by name, typed Any
                cloudpickle = importlib.import_module("cloudpickle")
            except ImportError:
                raise ConfigError(
                    "exporting as cloudpickle needs cloudpickle: pip install 'pipeforge[mlflow]'"
                ) from None
            cloudpickle.dump(model, handle)
            return None
        try:
            import skops.io as sio
        except ImportError:
            raise ConfigError(
                "exporting as skops needs skops: pip install 'pipeforge[skops]'"
            ) from None
        data = sio.dumps(model)
        handle.write(data)
        return sorted(sio.get_untrusted_types(data=data))


def _mlmodel(
    file_name: str,
    form: str,
    versions: Mapping[str, str],
    signature: Mapping[str, Any] | None,
    trusted: list[str] | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    sklearn_flavor: dict[str, Any] = {
        "pickled_model": file_name,
        "serialization_format": form,
        "sklearn_version": versions["scikit-learn"],
        "code": None,
    }
    if form == "skops":
        sklearn_flavor["skops_trusted_types"] = trusted or None
    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": file_name,
                "predict_fn": "predict",
                "python_version": versions["python"],
            },
            "sklearn": sklearn_flavor,
        },
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {"pipeforge": json.loads(json.dumps(dict(metadata), default=json_default))},
    }
    if signature is not None:
        mlmodel["signature"] = dict(signature)
    return mlmodel


def _environment(folder: str, versions: Mapping[str, str]) -> None:
    import yaml

    pins = [f"{name}=={v}" for name, v in versions.items() if name != "python"]
    requirements = ["mlflow", *pins]
    with open(os.path.join(folder, "requirements.txt"), "x", encoding="utf-8") as handle:
        handle.write("\n".join(requirements) + "\n")
    python_env = {"python": versions["python"], "build_dependencies": ["pip"]}
    python_env["dependencies"] = ["-r requirements.txt"]
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={versions['python']}", "pip", {"pip": requirements}],
    }
    for name, data in (("python_env.yaml", python_env), ("conda.yaml", conda)):
        with open(os.path.join(folder, name), "x", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=False)


def write_mlflow_folder(
    model: Any,
    folder: str,
    mapping: Iterable[Any] | None = None,
    *,
    serialization_format: str = "pickle",
) -> str:
    """Write ``model`` as the MLflow model folder ``folder`` (created); return its path.

    ``mapping``: the predict service's (name, type) pairs, made the
    signature (without one MLflow serves the model without checking
    inputs). The model's ``__metadata__`` is stored in ``MLmodel``, not in
    the model file.
    """
    if serialization_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"an MLflow export is written as one of {', '.join(EXPORT_FORMATS)}; "
            f"got {serialization_format!r} instead"
        )
    target = os.path.abspath(folder)
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise PersistenceError(f"{target} already exists; name a new folder for the MLflow model")
    signature = None if mapping is None else signature_from_mapping(mapping)
    metadata = dict(getattr(model, "__metadata__", None) or {})
    for key in ("mlflow", "signature", "mapping"):  # what a folder read says about itself
        metadata.pop(key, None)
    bare = copy.copy(model)
    with contextlib.suppress(AttributeError):
        del bare.__metadata__
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=parent)
    try:
        file_name = "model.skops" if serialization_format == "skops" else "model.pkl"
        try:
            trusted = _dump(bare, os.path.join(work, file_name), serialization_format)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ModelWriteError(
                f"cannot write the model as {serialization_format}: {exc}"
            ) from exc
        versions = _versions(metadata, serialization_format)
        mlmodel = _mlmodel(file_name, serialization_format, versions, signature, trusted, metadata)
        mlmodel["model_size_bytes"] = os.path.getsize(os.path.join(work, file_name))
        import yaml

        with open(os.path.join(work, MLMODEL), "x", encoding="utf-8") as handle:
            yaml.safe_dump(mlmodel, handle, sort_keys=False)
        _environment(work, versions)
        os.chmod(work, 0o755)
        if os.path.isdir(target):
            os.rmdir(target)  # empty: checked above
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target
