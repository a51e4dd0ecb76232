"""MLflow models served as they lie, without MLflow: one model folder, or a local registry.

:class:`MLflowModels` is a read-only model persister over

* an MLflow **model folder** (``mlflow.sklearn.save_model``; the folder
  holding ``MLmodel``): version 1, always active;
* a local **registry folder** (the tracking folder, ``mlruns``, with
  ``models/<name>/version-<n>/meta.yaml`` for each registered version);
* a local **registry database** (``mlflow.db``, MLflow's default SQLite
  backend), read with Python's own ``sqlite3``.

A registered version is the pipeforge version of the same number. The
active model is the version the ``alias`` names (say ``champion``), else
the newest version in ``stage`` (MLflow 2's stages), else the newest
version. Moving an alias with MLflow's client changes the served model
at the next cache refresh. pipeforge writes nothing there: ``write``,
``activate``, ``delete`` and ``update_metadata`` raise
:class:`ReadOnlyStoreError` (409 over HTTP) saying what to do in MLflow.

Models load as :mod:`~pipeforge.persistence.mlflow_folder` says: skops
files with skops (trusting ``trusted_types``), pickles only with
``allow_pickle``.
"""

from __future__ import annotations

import glob
import os
import sqlite3
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from ..config.files import path_base, resolve_path
from ..errors import ConfigError, NoModelError, PersistenceError
from ..interfaces import ModelPersister, annotate
from .mlflow_folder import MLMODEL, folder_metadata, load_model_folder
from .storage import as_version, db_version, warn_library_mismatch

__all__ = ["MLflowModels", "ReadOnlyStoreError"]

_GONE = {"Deleted_Internal"}  # MLflow's file store keeps deleted versions under this stage


class ReadOnlyStoreError(PersistenceError):
    """A change was asked of a store pipeforge only reads (an MLflow registry); HTTP 409."""

    http_status = 409


class MLflowModels(ModelPersister):
    """Serve the scikit-learn models of an MLflow model folder or local registry, read-only.

    ``path``: a model folder, a tracking folder (``mlruns``) or an
    ``mlflow.db`` file (relative to the config's folder). ``name``: the
    registered model (needed when the registry holds several). ``alias``
    / ``stage``: which version is active (default: the newest).
    ``trusted_types``: type names skops may build beyond scikit-learn's
    and numpy's. ``allow_pickle``: load pickle and cloudpickle models
    (code execution for whoever can write ``path``; off by default).
    """

    def __init__(
        self,
        path: str,
        name: str | None = None,
        alias: str | None = None,
        stage: str | None = None,
        trusted_types: list[str] | None = None,
        allow_pickle: bool = False,
    ) -> None:
        self.path = path
        self.name = name
        self.alias = alias
        self.stage = stage
        self.trusted_types = trusted_types
        self.allow_pickle = allow_pickle
        self._here: str | None = None
        self._trusted: list[str] | None = None

    def initialize_component(self, config: Any) -> None:
        """A relative ``path`` resolves against the config's folder."""
        self._here = path_base(config)

    def __repr__(self) -> str:
        return f"MLflowModels(path={self.path!r})"

    # -- parameters ----------------------------------------------------------
    def _check(self) -> None:
        if self._trusted is not None:
            return
        for key in ("name", "alias", "stage"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"parameter '{key}' of MLflowModels must be a non-empty string; "
                    f"got {value!r} instead"
                )
        if not isinstance(self.path, str | os.PathLike) or not os.fspath(self.path):
            raise ConfigError(
                "parameter 'path' of MLflowModels must be an MLflow model folder, a tracking "
                f"folder (mlruns) or an mlflow.db file; got {self.path!r} instead"
            )
        if not isinstance(self.allow_pickle, bool):
            raise ConfigError(
                "parameter 'allow_pickle' of MLflowModels must be true or false; "
                f"got {self.allow_pickle!r} instead"
            )
        from .skops_format import check_trusted_types

        self._trusted = check_trusted_types(self.trusted_types, "MLflowModels")

    def _root(self) -> str:
        path = os.fspath(self.path)
        if path.startswith("sqlite:///"):
            path = path[len("sqlite:///") :]
        elif path.startswith("file:"):
            path = _file_uri(path)
        return os.path.abspath(resolve_path(path, self._here))

    # -- what the registry holds -------------------------------------------
    def _versions(self) -> dict[int, dict[str, Any]]:
        """Each version's registry entry: ``folder`` or ``uris``, ``aliases``, ``stage``, ``run_id``."""
        self._check()
        root = self._root()
        if os.path.isfile(os.path.join(root, MLMODEL)):
            return {1: {"folder": root, "aliases": [], "stage": None}}
        if os.path.isfile(root):
            entries, aliases = _sqlite_registry(root, self.name)
        elif os.path.isdir(os.path.join(root, "models")):
            entries, aliases = _file_registry(root, self.name)
        else:
            raise NoModelError(
                f"{root} holds no MLflow model: neither an {MLMODEL} file, a registry's "
                "models/ folder nor an mlflow.db"
            )
        for alias, number in aliases.items():
            if number in entries:
                entries[number]["aliases"].append(alias)
        return entries

    def _active(self, versions: dict[int, dict[str, Any]]) -> int:
        if not versions:
            raise NoModelError(f"{self._root()} holds no registered version of the model yet")
        if self.alias is not None:
            found = [v for v, entry in versions.items() if self.alias in entry["aliases"]]
            if not found:
                raise NoModelError(
                    f"the registered model has no alias {self.alias!r}; set it with MLflow: "
                    f"MlflowClient().set_registered_model_alias(name, {self.alias!r}, version)"
                )
            return found[0]
        if self.stage is not None:
            staged = [v for v, entry in versions.items() if entry.get("stage") == self.stage]
            if not staged:
                raise NoModelError(f"no registered version is in stage {self.stage!r}")
            return max(staged)
        return max(versions)

    def _folder(self, entry: dict[str, Any]) -> str:
        if "folder" in entry:
            return entry["folder"]
        root = self._root()
        base = os.path.dirname(root) if os.path.isfile(root) else root
        tried = []
        for uri in entry["uris"]:
            path = _local_path(uri, base, root)
            if path is None:
                tried.append(uri)
                continue
            found = _relocated(path, base)
            if found is not None:
                return found
            tried.append(path)
        raise PersistenceError(
            f"model version {entry['version']} names no MLflow model folder on this machine "
            f"(tried {', '.join(map(str, tried)) or 'nothing'})"
        )

    def _metadata(self, number: int, entry: dict[str, Any], folder: str) -> dict[str, Any]:
        metadata = folder_metadata(folder)
        registry = {k: entry[k] for k in ("name", "stage", "run_id") if entry.get(k)}
        registry.update(version=number, aliases=sorted(entry["aliases"]))
        metadata["mlflow"] = {**metadata["mlflow"], **registry}
        metadata["version"] = number
        return metadata

    # -- the persister interface -----------------------------------------------
    def read(self, version: int | str | None = None) -> Any:
        versions = self._versions()
        number = self._active(versions) if version is None else _resolve(version, versions)
        entry = versions[number]
        folder = self._folder(entry)
        metadata = self._metadata(number, entry, folder)
        warn_library_mismatch(metadata, number)
        model = load_model_folder(
            folder, trusted_types=self._trusted or [], allow_pickle=self.allow_pickle
        )
        annotate(model, metadata)
        return model

    def list_models(self) -> list[dict]:
        versions = self._versions()
        listed = []
        for number in sorted(versions):
            entry = versions[number]
            try:
                listed.append(self._metadata(number, entry, self._folder(entry)))
            except PersistenceError as exc:
                listed.append({"version": number, "mlflow": {"problem": str(exc)}})
        return listed

    def list_properties(self) -> dict[str, str]:
        props = {"db-version": db_version()}
        versions = self._versions()
        if versions:
            try:
                props["active-model"] = str(self._active(versions))
            except NoModelError:
                pass
        return props

    def write(self, model: Any) -> int:
        raise ReadOnlyStoreError(
            f"{self!r} is read-only: register models with MLflow "
            "(mlflow.sklearn.log_model(..., registered_model_name=...)); keep models fitted "
            "by pipeforge in a pipeforge store and hand them over with pf-export --to-mlflow"
        )

    def activate(self, version: int) -> None:
        raise ReadOnlyStoreError(
            f"{self!r} is read-only: the active version is the one its alias names; move the "
            "alias with MLflow: MlflowClient().set_registered_model_alias(name, alias, version)"
        )

    def delete(self, version: int) -> None:
        raise ReadOnlyStoreError(
            f"{self!r} is read-only: delete model versions with MLflow "
            "(MlflowClient().delete_model_version(name, version))"
        )

    def update_metadata(self, version: int, changes: dict) -> dict:
        raise ReadOnlyStoreError(f"{self!r} is read-only: its metadata cannot be updated")


def _resolve(version: Any, versions: dict[int, Any]) -> int:
    from ..errors import UnknownVersionError

    number = as_version(version)
    if number is None or number not in versions:
        raise UnknownVersionError(version if number is None else number, sorted(versions))
    return number


def _file_uri(uri: str) -> str:
    return unquote(urlparse(uri).path)


def _yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise PersistenceError(f"cannot read the MLflow registry file {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _pick(names: Iterable[str], name: str | None, where: str) -> str:
    names = sorted(names)
    if name is not None:
        if name not in names:
            raise NoModelError(
                f"{where} has no registered model {name!r} (it has: {', '.join(names) or 'none'})"
            )
        return name
    if len(names) != 1:
        raise ConfigError(
            f"parameter 'name' of MLflowModels must name the registered model of {where} "
            f"(it has: {', '.join(names) or 'none'})"
        )
    return names[0]


def _file_registry(root: str, name: str | None) -> tuple[dict[int, dict], dict[str, int]]:
    """The versions and aliases of a registered model in a tracking folder (MLflow's file store)."""
    models = {}
    for meta in glob.glob(os.path.join(glob.escape(root), "models", "*", "meta.yaml")):
        data = _yaml(meta)
        models[str(data.get("name") or os.path.basename(os.path.dirname(meta)))] = meta
    chosen = _pick(models, name, root)
    folder = os.path.dirname(models[chosen])
    entries: dict[int, dict] = {}
    for meta in glob.glob(os.path.join(glob.escape(folder), "version-*", "meta.yaml")):
        data = _yaml(meta)
        number = as_version(data.get("version"))
        if number is None or data.get("current_stage") in _GONE or data.get("status") != "READY":
            continue
        entries[number] = _entry(chosen, number, data)
    aliases = {k: int(v) for k, v in (_yaml(models[chosen]).get("aliases") or {}).items()}
    for path in glob.glob(os.path.join(glob.escape(folder), "aliases", "*")):
        with open(path, encoding="utf-8") as handle:
            number = as_version(handle.read().strip())
        if number is not None:
            aliases[os.path.basename(path)] = number
    return entries, aliases


def _entry(name: str, number: int, row: dict[str, Any]) -> dict[str, Any]:
    stage = row.get("current_stage")
    return {
        "name": name,
        "version": number,
        "stage": None if stage in (None, "None") else stage,
        "run_id": row.get("run_id"),
        "uris": [u for u in (row.get("storage_location"), row.get("source")) if u],
        "aliases": [],
    }


def _sqlite_registry(path: str, name: str | None) -> tuple[dict[int, dict], dict[str, int]]:
    """The versions and aliases of a registered model in an ``mlflow.db`` (opened read-only)."""
    uri = f"file:{path}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            conn.row_factory = sqlite3.Row
            names = [r[0] for r in conn.execute("SELECT name FROM registered_models")]
            chosen = _pick(names, name, path)
            rows = conn.execute("SELECT * FROM model_versions WHERE name = ?", (chosen,))
            entries = {
                int(row["version"]): _entry(chosen, int(row["version"]), dict(row))
                for row in rows
                if row["status"] == "READY" and row["current_stage"] not in _GONE
            }
            aliases = {
                row["alias"]: int(row["version"])
                for row in conn.execute(
                    "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (chosen,)
                )
            }
            for entry in entries.values():  # MLflow 3 records a logged model's location by id
                entry["uris"] += _logged_model_locations(conn, entry["uris"])
    except sqlite3.Error as exc:
        raise PersistenceError(f"cannot read the MLflow registry database {path}: {exc}") from None
    return entries, aliases


def _logged_model_locations(conn: sqlite3.Connection, uris: list[str]) -> list[str]:
    ids = [u[len("models:/") :] for u in uris if u.startswith("models:/m-")]
    found = []
    for model_id in ids:
        try:
            row = conn.execute(
                "SELECT artifact_location FROM logged_models WHERE model_id = ?", (model_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # MLflow 2 has no logged models
            return []
        if row and row[0]:
            found.append(row[0])
    return found


def _local_path(uri: str, base: str, root: str) -> str | None:
    """The local folder an MLflow artifact URI names, or ``None`` (remote, or unknown here)."""
    if uri.startswith("file:"):
        return _file_uri(uri)
    if uri.startswith("models:/m-") and not os.path.isfile(root):  # MLflow 3's logged models
        pattern = os.path.join(
            glob.escape(root), "*", "models", uri[len("models:/") :], "meta.yaml"
        )
        for meta in glob.glob(pattern):
            location = _yaml(meta).get("artifact_location")
            return _local_path(location, base, root) if location else None
        return None
    if uri.startswith("runs:/") and not os.path.isfile(root):
        run_id, _, sub = uri[len("runs:/") :].partition("/")
        for meta in glob.glob(os.path.join(glob.escape(root), "*", run_id, "meta.yaml")):
            artifacts = _local_path(str(_yaml(meta).get("artifact_uri") or ""), base, root)
            return os.path.join(artifacts, sub) if artifacts else None
        return None
    if "://" in uri or ":/" in uri.split(os.sep, 1)[0]:
        return None  # s3://, mlflow-artifacts:/, ...: not on this machine
    return os.path.join(base, uri)


def _relocated(path: str, base: str) -> str | None:
    """``path`` if it holds an MLmodel; else its tail found under ``base`` (a moved tracking folder)."""
    if os.path.isfile(os.path.join(path, MLMODEL)):
        return path
    parts = os.path.normpath(path).strip(os.sep).split(os.sep)
    for start in range(1, len(parts)):
        for folder in (base, os.path.join(base, "mlruns")):
            candidate = os.path.join(folder, *parts[start:])
            if os.path.isfile(os.path.join(candidate, MLMODEL)):
                return candidate
    return None
