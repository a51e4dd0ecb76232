"""Persisters that keep models in files reached through an ``io`` object (Palladium's ``FileLike``).

:class:`FileLike` needs only three operations on its store, given by a
:class:`FileLikeIO`: ``open``, ``exists`` and ``remove``. :class:`FileIO`
does them on the local file system, :class:`RestIO` over HTTP (``GET``,
``PUT``, ``HEAD``, ``DELETE``, e.g. an Artifactory repository), which makes
:class:`Rest`. The layout is Palladium's, so stores Palladium wrote this
way keep working: ``<path with version>.pkl.gz`` per model (a gzipped
pickle) and ``<path with 'metadata'>.json`` holding the models' metadata
and the store's properties.

A model file is written completely before the metadata lists it, so a
failed write leaves no version behind; the highest version ever used is
kept in the metadata, so versions are never reused. An HTTP store has no
locks: two processes writing at the same moment can claim the same
version there; use :class:`~pipeforge.persistence.Database` for that.

A URL's password (``https://user:password@host/...``) never appears in a
message, a log line or a ``repr``: it is shown as ``***``.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import os
import pickle
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any

from ..config.files import path_base, resolve_path
from ..errors import ConfigError, ModelWriteError, NoModelError, PersistenceError
from ..interfaces import annotate
from ..release.aliases import pointing_at
from ..sql import redact_url
from .chunks import BLOCK
from .storage import (
    DEFAULT_COMPRESS,
    NO_ACTIVE,
    PersisterBase,
    SignedChange,
    Stored,
    db_version,
    json_default,
    temp_name,
    warn_library_mismatch,
)
from .upgrade import UpgradeSteps

__all__ = ["FileLikeIO", "FileIO", "RestIO", "FileLike", "Rest"]

logger = logging.getLogger(__name__)

_FORMAT_KEY = "model_format"  # in a model's metadata: how its file was written, if not pickled


class FileLikeIO(abc.ABC):
    """The file operations :class:`FileLike` uses; paths are whatever the store understands."""

    @abc.abstractmethod
    def open(self, path: str, mode: str = "r") -> Any:
        """A file object (usable with ``with``) for ``path``; modes ``r``, ``rb``, ``wb``.

        Raises ``FileNotFoundError`` when reading a path that does not exist.
        """

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""

    @abc.abstractmethod
    def remove(self, path: str) -> None:
        """Remove ``path``."""


class FileIO(FileLikeIO):
    """Local files; a file opened for writing appears under its name only once closed."""

    def open(self, path: str, mode: str = "r") -> Any:
        if "w" not in mode:
            return open(path, mode)  # noqa: SIM115 (the caller closes it)
        return _replace_on_close(path, mode)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def remove(self, path: str) -> None:
        os.remove(path)


@contextlib.contextmanager
def _replace_on_close(path: str, mode: str):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, mode.replace("w", "x")) as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class RestIO(FileLikeIO):
    """Files as URLs of an HTTP store: ``GET`` reads, ``PUT`` writes, ``HEAD`` and ``DELETE``.

    ``auth`` is what ``requests`` takes (a ``(user, password)`` pair for
    basic auth). A file opened for writing is uploaded when it is closed
    without an error.
    """

    def __init__(self, auth: Any = None, timeout: float = 60.0):
        self.auth = auth
        self.timeout = timeout
        self._session = None

    def _http(self):
        if self._session is None:
            import requests

            session = requests.Session()
            session.auth = tuple(self.auth) if isinstance(self.auth, list) else self.auth
            self._session = session
        return self._session

    def _request(self, method: str, url: str, **kwargs):
        import requests

        try:
            response = self._http().request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise PersistenceError(
                f"{method} {redact_url(url)} failed: {redact_url(str(exc))}"
            ) from None
        if response.status_code == 404 and method in ("GET", "HEAD", "DELETE"):
            response.close()
            raise FileNotFoundError(f"{redact_url(url)} does not exist (404)")
        if response.status_code >= 400:
            response.close()
            raise PersistenceError(
                f"{method} {redact_url(url)} failed: {response.status_code} {response.reason}"
            )
        return response

    def open(self, path: str, mode: str = "r") -> Any:
        if "w" in mode:
            return self._upload_on_close(path)
        response = self._request("GET", path, stream=True)
        response.raw.decode_content = True
        if "b" in mode:
            return response.raw
        import io

        return io.TextIOWrapper(response.raw, encoding=response.encoding or "utf-8")

    @contextlib.contextmanager
    def _upload_on_close(self, url: str):
        with tempfile.TemporaryFile() as handle:
            yield handle
            handle.seek(0)
            self._request("PUT", url, data=handle).close()

    def exists(self, path: str) -> bool:
        try:
            self._request("HEAD", path).close()
        except FileNotFoundError:
            return False
        return True

    def remove(self, path: str) -> None:
        self._request("DELETE", path).close()


class FileLike(PersisterBase):
    """Models pickled (gzipped) through ``io``, named by ``path``, which must contain ``{version}``."""

    upgrade_steps = UpgradeSteps()

    def __init__(
        self,
        path: str,
        io: FileLikeIO,
        compress: int | bool = DEFAULT_COMPRESS,
        pickler: str = "pickle",
        format: str = "pickle",
        trusted_types: list[str] | None = None,
        allow_pickle: bool | None = None,
    ):
        self.path = path
        self.io = io
        self.compress = compress
        self.pickler = pickler
        self.format = format
        self.trusted_types = trusted_types
        self.allow_pickle = allow_pickle
        self._here: str | None = None

    def initialize_component(self, config: Any) -> None:
        """A relative local ``path`` resolves like every path (see ``config.files.path_base``)."""
        self._here = path_base(config)

    def __repr__(self) -> str:
        path = redact_url(self.path) if isinstance(self.path, str) else self.path
        return f"{type(self).__name__}(path={path!r})"

    def _check(self) -> None:
        name = type(self).__name__
        if not isinstance(self.path, str) or "{version}" not in self.path:
            raise ConfigError(
                f"parameter 'path' of {name} must contain '{{version}}', such as "
                f"'model-{{version}}'; got {self._shown_path()!r} instead"
            )
        if not isinstance(self.io, FileLikeIO) and not all(
            callable(getattr(self.io, op, None)) for op in ("open", "exists", "remove")
        ):
            raise ConfigError(
                f"parameter 'io' of {name} must have open, exists and remove (a FileLikeIO); "
                f"got {self.io!r} instead"
            )
        self._check_common()

    def _shown_path(self) -> Any:
        return redact_url(self.path) if isinstance(self.path, str) else self.path

    def _name(self, version) -> str:
        self._check()
        return resolve_path(self.path, self._here).replace("{version}", str(version))

    def _model_file(self, version: int) -> str:
        return self._name(version) + ".pkl.gz"

    def _metadata_file(self) -> str:
        return self._name("metadata") + ".json"

    def _read_metadata(self) -> dict:
        name = self._metadata_file()  # checks the parameters first
        try:
            with self.io.open(name, "r") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            raise PersistenceError(
                f"cannot read {redact_url(name)}: {redact_url(str(exc))}"
            ) from exc
        if not isinstance(data, dict):
            data = {"models": [], "properties": {"db-version": db_version()}}
        data.setdefault("models", [])
        data.setdefault("properties", {})
        return data

    def _write_metadata(self, data: dict) -> None:
        text = json.dumps(data, default=json_default, indent=4).encode("utf-8")
        with self.io.open(self._metadata_file(), "wb") as handle:
            handle.write(text)

    def _set_property(self, name: str, value: str | None, version: int | None = None) -> None:
        data = self._read_metadata()
        if version is not None:  # an alias: only while its version is stored
            self._resolve(version, [m["version"] for m in data["models"]])
        if value is None:
            data["properties"].pop(name, None)
        else:
            data["properties"][name] = value
        self._write_metadata(data)

    def write(self, model: Any) -> int:
        saved = self._saved_metadata(model)
        data = self._read_metadata()
        known = [m["version"] for m in data["models"]]
        version = max([int(data.get("last-version", 0)), *known], default=0) + 1
        target = self._model_file(version)
        try:
            metadata = self._annotate(model, version)
            json.dumps(metadata, default=json_default)
            with self.io.open(target, "wb") as handle:
                try:
                    digest = self._dump_gzip(model, handle, version)
                except Exception as exc:
                    raise ModelWriteError(f"cannot store model: {exc}") from exc
            if self._format() == "skops":  # the file does not say; its digest covers it
                metadata[_FORMAT_KEY] = annotate(model, {_FORMAT_KEY: "skops"})[_FORMAT_KEY]
            self._record_digest(model, metadata, digest)
            data["models"].append(metadata)
            data["last-version"] = version
            try:
                self._write_metadata(data)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.io.remove(target)
                raise
        except BaseException:
            self._restore(model, saved)
            raise
        logger.info("stored model version %d in %s", version, redact_url(target))
        return version

    def read(self, version: int | str | None = None) -> Any:
        data = self._read_metadata()
        if version is None:
            version = data["properties"].get("active-model")
            if version is None:
                raise NoModelError(NO_ACTIVE)
        models = {m["version"]: m for m in data["models"]}
        number = self._resolve(version, models)
        warn_library_mismatch(models[number], number)
        source = self._model_file(number)
        try:
            with self._stored(number, models[number]) as (fmt, compression, chunks):
                return self._load(chunks, compression, fmt, number, models[number])
        except FileNotFoundError as exc:
            raise PersistenceError(
                f"model version {number} is listed but {redact_url(source)} is missing"
            ) from exc
        except (OSError, EOFError, zlib.error, pickle.UnpicklingError) as exc:
            raise PersistenceError(
                f"cannot read model version {number} from {redact_url(source)}: "
                f"{redact_url(str(exc))}"
            ) from exc

    @contextlib.contextmanager
    def _stored(self, version: int, metadata: dict | None = None) -> Iterator[Stored]:
        """Model ``version``'s stored bytes: its gzip file as it is."""
        if metadata is None:
            metadata = next(m for m in self.list_models() if m["version"] == version)
        fmt = metadata.get(_FORMAT_KEY, self.pickler)
        with self.io.open(self._model_file(version), "rb") as handle:
            yield fmt, "gzip", iter(lambda: handle.read(BLOCK), b"")

    def _record_digests(self, changes: dict[int, SignedChange]) -> None:
        data = self._read_metadata()
        for entry in data["models"]:
            if entry["version"] in changes:
                entry.update(changes[entry["version"]])
        self._write_metadata(data)

    def activate(self, version: int | str) -> None:
        data = self._read_metadata()
        number = self._resolve(version, [m["version"] for m in data["models"]])
        data["properties"]["active-model"] = str(number)
        self._write_metadata(data)

    def delete(self, version: int | str) -> None:
        data = self._read_metadata()
        number = self._resolve(version, [m["version"] for m in data["models"]])
        data["models"] = [m for m in data["models"] if m["version"] != number]
        data["last-version"] = max(int(data.get("last-version", 0)), number)
        for name in pointing_at(data["properties"], number):  # the active model, other aliases
            del data["properties"][name]
        self._write_metadata(data)
        with contextlib.suppress(FileNotFoundError):
            self.io.remove(self._model_file(number))

    def list_models(self) -> list[dict]:
        return sorted(self._read_metadata()["models"], key=lambda m: m["version"])

    def update_metadata(self, version: int | str, changes: dict) -> dict:
        """Merge ``changes`` into the stored metadata of ``version`` (scores, tags)."""
        data = self._read_metadata()
        number = self._resolve(version, [m["version"] for m in data["models"]])
        index = next(i for i, m in enumerate(data["models"]) if m["version"] == number)
        data["models"][index] = self._merged(data["models"][index], changes)
        self._write_metadata(data)
        return data["models"][index]

    def list_properties(self) -> dict[str, str]:
        return {k: str(v) for k, v in self._read_metadata()["properties"].items()}


class Rest(FileLike):
    """Models in an HTTP store such as Artifactory: ``url`` contains ``{version}``, ``auth`` as for requests."""

    def __init__(
        self,
        url: str,
        auth: Any = None,
        compress: int | bool = DEFAULT_COMPRESS,
        pickler: str = "pickle",
        timeout: float = 60.0,
        format: str = "pickle",
        trusted_types: list[str] | None = None,
        allow_pickle: bool | None = None,
    ):
        super().__init__(
            url,
            RestIO(auth, timeout=timeout),
            compress=compress,
            pickler=pickler,
            format=format,
            trusted_types=trusted_types,
            allow_pickle=allow_pickle,
        )
        self.url = url
        self.auth = auth
        self.timeout = timeout

    def __repr__(self) -> str:
        url = redact_url(self.url) if isinstance(self.url, str) else self.url
        return f"Rest(url={url!r})"
