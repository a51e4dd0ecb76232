"""The file-system model persister.

:class:`File` keeps each model in its own file and the models' metadata
and the store's properties in JSON files beside them. Versions are
claimed under an exclusive ``fcntl`` lock, and every file is written
under a temporary name and moved into place, so concurrent processes get
distinct versions and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

from ..config.files import path_base, resolve_path
from ..errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnmigratedStoreError,
)
from ..release.aliases import pointing_at
from .chunks import BLOCK, COMPRESSIONS
from .palladium_stores import (
    PalladiumFiles,
    is_palladium_metadata,
    report_import,
    unmigrated_message,
)
from .storage import (
    DEFAULT_COMPRESS,
    NO_ACTIVE,
    PersisterBase,
    Stored,
    db_version,
    json_default,
    temp_name,
    warn_library_mismatch,
)
from .upgrade import UpgradeSteps

__all__ = ["File"]

logger = logging.getLogger(__name__)


def _header(pickler: str, compression: str) -> bytes:
    """The first line of a model file: what wrote the bytes after it."""
    return f"pipeforge-model 1 {pickler} {compression}\n".encode()


class File(PersisterBase):
    """Models pickled to files named by ``path`` (which must contain ``{version}``).

    Next to them live ``<name>-metadata.json`` (the models' metadata),
    ``<name>-properties.json`` and a lock file; versions are claimed under
    an exclusive ``fcntl`` lock, and every file is written to a temporary
    name first and moved into place, so a failed write leaves nothing.

    Models Palladium's ``File`` wrote with the same ``path``
    (``<path>.pkl.gz`` and ``<path for 'metadata'>.json``) are imported by
    :meth:`upgrade`; until then every other operation fails with
    :class:`~pipeforge.errors.UnmigratedStoreError`. Where Palladium's
    metadata file has the name pipeforge's would have (a ``path`` without
    an extension), pipeforge keeps its own in ``<name>.pipeforge.json``.
    """

    upgrade_steps = UpgradeSteps()

    def __init__(
        self,
        path: str = "model-{version}.pickle",
        compress: int | bool = DEFAULT_COMPRESS,
        pickler: str = "pickle",
        format: str = "pickle",
        trusted_types: list[str] | None = None,
        allow_pickle: bool | None = None,
    ):
        self.path = path
        self.compress = compress
        self.pickler = pickler
        self.format = format
        self.trusted_types = trusted_types
        self.allow_pickle = allow_pickle
        self._checked = False
        self._here: str | None = None

    def initialize_component(self, config: Any) -> None:
        """A relative ``path`` resolves like every path (see ``config.files.path_base``)."""
        self._here = path_base(config)

    def __repr__(self) -> str:
        return f"File(path={self.path!r})"

    def _check(self) -> None:
        if self._checked:
            return
        if not isinstance(self.path, (str, os.PathLike)) or "{version}" not in str(self.path):
            raise ConfigError(
                "parameter 'path' of File must be a path containing '{version}', "
                f"such as 'model-{{version}}.pickle'; got {self.path!r} instead"
            )
        self._check_common()
        self._checked = True

    def _file(self, version) -> str:
        path = resolve_path(os.fspath(self.path), self._here)
        return path.replace("{version}", str(version))

    def _sidecar(self, name: str, ext: str = ".json") -> str:
        path = os.path.splitext(self._file(name))[0] + ext
        if name == "metadata" and ext == ".json":
            own = os.path.splitext(path)[0] + ".pipeforge.json"
            if os.path.exists(own) or self._is_palladiums(path):
                return own
        return path

    def _palladium_files(self) -> PalladiumFiles:
        return PalladiumFiles(resolve_path(os.fspath(self.path), self._here))

    def _is_palladiums(self, path: str) -> bool:
        """Whether ``path`` is Palladium's metadata file (never to be overwritten)."""
        if not os.path.exists(path) or path != self._palladium_files().metadata_file:
            return False
        try:
            with open(path, encoding="utf-8") as handle:
                return is_palladium_metadata(json.load(handle))
        except (OSError, ValueError):
            return False

    def _last_version(self, props: dict, models: list) -> int:
        return max([int(props.get("_last-version", 0)), *(m["version"] for m in models)])

    def _guard(self, props: dict | None = None, models: list | None = None) -> None:
        """Refuse to work on a store whose Palladium models pf-upgrade has not imported."""
        palladium = self._palladium_files()
        data = palladium.read()
        if data is None:
            return
        props = self._props() if props is None else props
        models = self._load_json("metadata", []) if models is None else models
        last = self._last_version(props, models)
        pending = [v for v in palladium.versions(data) if v > last]
        if pending:
            store = f"model store {palladium.template}"
            raise UnmigratedStoreError(unmigrated_message(store, pending, data["properties"]))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self._check()
        folder = os.path.dirname(self._file(0)) or "."
        os.makedirs(folder, exist_ok=True)
        with open(self._sidecar("lock", ".lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_json(self, name: str, default):
        self._check()
        try:
            with open(self._sidecar(name), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return default

    def _save_json(self, name: str, data) -> None:
        target = self._sidecar(name)
        tmp = temp_name(target)
        try:
            with open(tmp, "x", encoding="utf-8") as handle:
                json.dump(data, handle, default=json_default, indent=1)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _props(self) -> dict:
        return self._load_json("properties", None) or {"db-version": db_version()}

    def _set_property(self, name: str, value: str | None, version: int | None = None) -> None:
        with self._locked():
            if version is not None:  # an alias: only while its version is stored
                self._resolve(version, [m["version"] for m in self._load_json("metadata", [])])
            props = self._props()
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
            self._save_json("properties", props)

    def write(self, model: Any) -> int:
        saved = self._saved_metadata(model)
        with self._locked():
            props = self._props()
            models = self._load_json("metadata", [])
            self._guard(props, models)
            version = self._last_version(props, models) + 1
            props["_last-version"] = version
            self._save_json("properties", props)
            target = self._file(version)
            tmp = temp_name(target)
            try:
                metadata = self._annotate(model, version)
                with open(tmp, "xb") as handle:
                    compression = "zlib" if self._level else "none"
                    handle.write(_header(self._format(), compression))
                    try:
                        sink = self._dump(model, lambda _, data: handle.write(data), BLOCK, version)
                        self._record_digest(model, metadata, sink.digest)
                        json.dumps(metadata, default=json_default)
                    except Exception as exc:
                        raise ModelWriteError(f"cannot store model: {exc}") from exc
                os.replace(tmp, target)
                try:
                    self._save_json("metadata", [*models, metadata])
                except BaseException:
                    os.unlink(target)
                    raise
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                self._restore(model, saved)
                raise
        return version

    def read(self, version: int | str | None = None) -> Any:
        self._check()
        self._guard()
        if version is None:
            version = self._props().get("active-model")
            if version is None:
                raise NoModelError(NO_ACTIVE)
        models = {m["version"]: m for m in self._load_json("metadata", [])}
        number = self._resolve(version, models)
        warn_library_mismatch(models[number], number)
        with self._stored(number) as (fmt, compression, chunks):
            return self._load(chunks, compression, fmt, number, models[number])

    @contextlib.contextmanager
    def _stored(self, version: int) -> Iterator[Stored]:
        """Model ``version``'s stored bytes: its file after the header line."""
        try:
            handle = open(self._file(version), "rb")
        except FileNotFoundError as exc:
            raise PersistenceError(
                f"model version {version} is listed but {exc.filename} is missing"
            ) from exc
        with handle:
            header = handle.readline().decode("ascii", "replace").split()
            if (
                header[:2] != ["pipeforge-model", "1"]
                or len(header) != 4
                or header[3] not in COMPRESSIONS
            ):
                raise PersistenceError(f"{self._file(version)} is not a pipeforge model file")
            yield header[2], header[3], iter(lambda: handle.read(BLOCK), b"")

    def activate(self, version: int | str) -> None:
        with self._locked():
            models = self._load_json("metadata", [])
            self._guard(models=models)
            number = self._resolve(version, [m["version"] for m in models])
            props = self._props()
            props["active-model"] = str(number)
            self._save_json("properties", props)

    def delete(self, version: int | str) -> None:
        with self._locked():
            models = self._load_json("metadata", [])
            self._guard(models=models)
            number = self._resolve(version, [m["version"] for m in models])
            self._save_json("metadata", [m for m in models if m["version"] != number])
            props = self._props()
            named = pointing_at(props, number)  # the active model and other aliases
            for name in named:
                del props[name]
            if named:
                self._save_json("properties", props)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file(number))

    def list_models(self) -> list[dict]:
        models = self._load_json("metadata", [])
        self._guard(models=models)
        return sorted(models, key=lambda m: m["version"])

    def list_properties(self) -> dict[str, str]:
        return {k: str(v) for k, v in self._props().items() if not k.startswith("_")}

    def update_metadata(self, version: int | str, changes: dict) -> dict:
        """Merge ``changes`` into the stored metadata of ``version`` (e.g. test scores)."""
        with self._locked():
            models = self._load_json("metadata", [])
            number = self._resolve(version, [m["version"] for m in models])
            index = next(i for i, m in enumerate(models) if m["version"] == number)
            models[index] = self._merged(models[index], changes)
            self._save_json("metadata", models)
            return models[index]

    # -- Palladium's stores --------------------------------------------------
    def _import_foreign(self) -> list[str]:
        return self.import_palladium()

    def import_palladium(self, palladium: PalladiumFiles | None = None) -> list[str]:
        """Import the models Palladium's ``File`` wrote with this path (pf-upgrade's first step).

        Every Palladium version above the last version pipeforge knows comes
        over: its gzip pickle byte for byte behind pipeforge's header line,
        its metadata as Palladium listed it. Palladium's active version is
        taken over if pipeforge has none. Palladium's files are only read; a
        failed copy leaves none of the new files behind. Running it again
        finds nothing to import. ``palladium``: the files to import (by
        default those of this ``path``). Returns what was done, one line
        (or none).
        """
        self._check()
        palladium = self._palladium_files() if palladium is None else palladium
        with self._locked():
            data = palladium.read()
            if data is None:
                return []
            props = self._props()
            models = self._load_json("metadata", [])
            last = self._last_version(props, models)
            entries = {int(m["version"]): m for m in data["models"] if "version" in m}
            imported = [v for v in sorted(entries) if v > last]
            previous = str(props.get("palladium-imported", "")).split(",")
            skipped = [v for v in sorted(entries) if v <= last and str(v) not in previous]
            self._copy_palladiums(palladium, imported)
            added = [dict(entries[v], version=v) for v in imported]
            try:
                self._save_json("metadata", [*models, *added])
            except BaseException:
                for version in imported:
                    with contextlib.suppress(OSError):
                        os.unlink(self._file(version))
                raise
            active = data["properties"].get("active-model")  # unless pipeforge has its own
            if active in {str(v) for v in imported} and "active-model" not in props:
                props["active-model"] = active
            else:
                active = None
            props["_last-version"] = max([last, *imported])
            if imported:
                props["palladium-imported"] = ",".join(
                    [p for p in previous if p] + [str(v) for v in imported]
                )
            self._save_json("properties", props)
        files = f"{palladium.metadata_file} and its .pkl.gz files"
        return report_import(files, imported, active, skipped, data["properties"])

    def _copy_palladiums(self, palladium: PalladiumFiles, versions: list[int]) -> None:
        """Copy Palladium's model files of ``versions`` into pipeforge's: all of them, or none."""
        copies: dict[int, str] = {}
        try:
            for version in versions:
                copies[version] = temp_name(self._file(version))
                with open(palladium.model_file(version), "rb") as source:
                    with open(copies[version], "xb") as handle:
                        handle.write(_header("pickle", "gzip"))
                        shutil.copyfileobj(source, handle, BLOCK)
            for version, tmp in copies.items():
                os.replace(tmp, self._file(version))
        except BaseException:
            for version, tmp in copies.items():
                for path in (tmp, self._file(version)):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            raise
