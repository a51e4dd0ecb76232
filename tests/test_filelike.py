"""FileLike persisters (Palladium's FileLike, File-through-FileIO and Rest) on real files and a real HTTP store."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import pickle
import threading
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from pipeforge.config import load_config
from pipeforge.errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnknownVersionError,
)
from pipeforge.persistence.filelike import FileIO, FileLike, Rest

USER, PASSWORD = "modelz", "passw0rd"


class _Store(http.server.BaseHTTPRequestHandler):
    """An Artifactory-like file store: PUT, GET, HEAD, DELETE under a folder, with basic auth."""

    root: Path

    def log_message(self, *args):
        pass

    def _file(self) -> Path | None:
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self.root / self.path.lstrip("/").replace("/", "_")

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self._file()
        if path is not None:
            self._answer(200, path.read_bytes()) if path.exists() else self._answer(404)

    do_HEAD = do_GET

    def do_PUT(self):
        path = self._file()
        if path is not None:
            path.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer(201)

    def do_DELETE(self):
        path = self._file()
        if path is not None:
            if path.exists():
                path.unlink()
                self._answer(204)
            else:
                self._answer(404)


@pytest.fixture
def http_store(tmp_path):
    """A running HTTP file store on 127.0.0.1; yields (base URL, folder with the files)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = type("Handler", (_Store,), {"root": folder})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(params=["file", "rest"])
def persister(request, tmp_path):
    if request.param == "file":
        return FileLike(str(tmp_path / "models" / "iris-{version}"), FileIO())
    url, _ = request.getfixturevalue("http_store")
    return Rest(f"{url}/modelz/iris-{{version}}", (USER, PASSWORD))


@pytest.fixture(scope="module")
def model():
    X, y = load_iris(return_X_y=True)
    return DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)


def test_write_read_activate_list(persister, model):
    assert persister.list_models() == []
    assert persister.list_properties()["db-version"]
    with pytest.raises(NoModelError):
        persister.read()
    first, second = persister.write(model), persister.write(model)
    assert (first, second) == (1, 2)
    assert "active-model" not in persister.list_properties()
    persister.activate(first)
    assert persister.read().__metadata__["version"] == 1
    assert persister.read(version=2).__metadata__["version"] == 2
    listed = persister.list_models()
    assert [m["version"] for m in listed] == [1, 2]
    assert all("train_timestamp" in m and "library_versions" in m for m in listed)
    assert persister.list_properties()["active-model"] == "1"


def test_unknown_versions_and_no_reuse_after_delete(persister, model):
    persister.write(model)
    persister.activate(persister.write(model))
    for operation in (persister.read, persister.activate, persister.delete):
        with pytest.raises(UnknownVersionError, match=r"no model with version 9 \(available"):
            operation(9)
    persister.delete(2)
    assert "active-model" not in persister.list_properties()
    assert persister.write(model) == 3  # 2 is never used again


def test_failed_write_leaves_nothing(persister, model):
    persister.write(model)
    with pytest.raises(ModelWriteError):
        persister.write(lambda: None)  # not picklable
    assert [m["version"] for m in persister.list_models()] == [1]
    assert persister.write(model) == 2


def test_rest_store_layout_is_palladiums(http_store, model):
    url, folder = http_store
    store = Rest(f"{url}/modelz/iris-{{version}}", [USER, PASSWORD])
    store.activate(store.write(model))
    metadata = json.loads((folder / "modelz_iris-metadata.json").read_text())
    assert metadata["properties"]["active-model"] == "1"
    assert [m["version"] for m in metadata["models"]] == [1]
    with gzip.open(folder / "modelz_iris-1.pkl.gz") as packed:
        assert pickle.load(packed).__metadata__["version"] == 1


def test_rest_store_written_by_palladium_is_read(http_store, model):
    # What Palladium's Rest persister leaves on the server: the gzipped pickle and metadata.
    url, folder = http_store
    with gzip.open(folder / "old_m-3.pkl.gz", "wb") as packed:
        pickle.dump(model, packed)
    (folder / "old_m-metadata.json").write_text(
        json.dumps(
            {
                "models": [{"version": 3, "train_timestamp": "2019-04-09T13:08:11"}],
                "properties": {"active-model": "3", "db-version": "1.2"},
            }
        )
    )
    store = Rest(f"{url}/old/m-{{version}}", (USER, PASSWORD))
    assert store.read().predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0
    assert store.write(model) == 4  # Palladium's versions go on


def test_rest_wrong_password_is_a_persistence_error(http_store, model):
    url, _ = http_store
    store = Rest(f"{url}/modelz/iris-{{version}}", (USER, "wrong"))
    with pytest.raises(PersistenceError, match=r"GET .*iris-metadata.json failed: 401"):
        store.list_models()


def test_rest_in_a_palladium_config(http_store, tmp_path):
    url, _ = http_store
    path = tmp_path / "config.py"
    path.write_text(
        "{'model_persister': {'__factory__': 'palladium.persistence.Rest',"
        f" 'url': '{url}/artifactory/modelz/{{version}}', 'auth': ('{USER}', '{PASSWORD}')}}}}"
    )
    persister = load_config([str(path)])["model_persister"]
    assert isinstance(persister, Rest) and persister.list_models() == []


def test_filelike_takes_the_ios_of_palladiums_interface(tmp_path, model):
    class Counting(FileIO):  # a user's own io: any object with open, exists and remove
        opened = 0

        def open(self, path, mode="r"):
            Counting.opened += 1
            return super().open(path, mode)

    store = FileLike(str(tmp_path / "m-{version}"), Counting())
    store.activate(store.write(model))
    assert store.read().__metadata__["version"] == 1 and Counting.opened >= 4


def test_bad_parameters_fail_at_first_use(tmp_path):
    with pytest.raises(
        ConfigError, match=r"parameter 'path' of FileLike must contain '\{version\}'"
    ):
        FileLike(str(tmp_path / "model"), FileIO()).list_models()
    with pytest.raises(ConfigError, match=r"parameter 'io' of FileLike must have open"):
        FileLike(str(tmp_path / "m-{version}"), "local").list_models()
