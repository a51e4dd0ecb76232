"""Models that load without pickle, and pickles checked before they load.

Through what users touch: config files, pf-fit / pf-test / pf-upgrade
(``main(argv)``) and ``/predict``, on every persister kind. The store is
tampered with behind pipeforge's back (SQL on the rows, bytes in the files),
as someone who can write it would.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from pipeforge.cli import scripts
from pipeforge.config import load_config
from pipeforge.server import create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config_dict
from tests.integrity_models import payload

KINDS = ["sqlite", "postgres", "file", "filelike"]
SETOSA = dict(zip(IRIS_FEATURES, ["5.1", "3.5", "1.4", "0.2"], strict=True))


class Project:
    """A config file with one model store, and ways to reach into that store."""

    def __init__(self, kind: str, tmp_path: Path, monkeypatch, url: str | None):
        self.kind, self.tmp, self.monkeypatch = kind, tmp_path, monkeypatch
        if kind in ("sqlite", "postgres"):
            self.url = url or f"sqlite:///{tmp_path / 'models.db'}"
            self.store = {"__factory__": "pipeforge.persistence.Database", "url": self.url}
        elif kind == "file":
            self.store = {
                "__factory__": "pipeforge.persistence.File",
                "path": str(tmp_path / "models" / "model-{version}.pickle"),
            }
        else:
            self.store = {
                "__factory__": "pipeforge.persistence.FileLike",
                "path": str(tmp_path / "fl" / "model-{version}"),
                "io": {"__factory__": "pipeforge.persistence.FileIO"},
            }
        self.config_file = tmp_path / "config.yaml"
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("PIPEFORGE_MODEL_KEY", raising=False)
        monkeypatch.delenv("PIPEFORGE_MODEL_KEY_FILE", raising=False)
        monkeypatch.setenv("PIPEFORGE_CONFIG", str(self.config_file))
        self.write()

    def write(self, cached: bool = False, **options) -> None:
        store = {**self.store, **options}
        if cached:
            store = {"__factory__": "pipeforge.persistence.CachedUpdatePersister", "impl": store}
        config = iris_config_dict(self.tmp, model_persister=store)
        config["dataset_loader_test"] = config["dataset_loader_train"]
        config["model"] = self.model
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    model = {"__factory__": "sklearn.linear_model.LogisticRegression", "max_iter": 1000}

    def run(self, main, argv, capsys):
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    # -- behind pipeforge's back ---------------------------------------------
    def _engine(self):
        return sa.create_engine(self.url)

    def stored_format(self, version: int) -> str:
        if self.kind in ("sqlite", "postgres"):
            engine = self._engine()
            with engine.connect() as conn:
                query = "SELECT pickler FROM pipeforge_models WHERE version = :v"
                found = conn.execute(sa.text(query), {"v": version}).scalar_one()
            engine.dispose()
            return found
        if self.kind == "file":
            with open(self.model_file(version), "rb") as handle:
                return handle.readline().split()[2].decode()
        entry = self.metadata(version)
        return entry.get("model_format", "pickle")

    def stored_bytes(self, version: int) -> bytes:
        """The serialized model as stored (decompressed)."""
        if self.kind in ("sqlite", "postgres"):
            engine = self._engine()
            with engine.connect() as conn:
                query = "SELECT data FROM pipeforge_model_chunks WHERE version = :v ORDER BY idx"
                data = b"".join(r[0] for r in conn.execute(sa.text(query), {"v": version}))
            engine.dispose()
            return _inflate(data)
        if self.kind == "file":
            with open(self.model_file(version), "rb") as handle:
                handle.readline()
                return _inflate(handle.read())
        return gzip.decompress(Path(self.model_file(version)).read_bytes())

    def model_file(self, version: int) -> str:
        if self.kind == "file":
            return str(self.tmp / "models" / f"model-{version}.pickle")
        return str(self.tmp / "fl" / f"model-{version}.pkl.gz")

    def replace_model(self, version: int, raw: bytes) -> None:
        """Put ``raw`` (a pickle) where model ``version`` is, compressed as the store does."""
        if self.kind in ("sqlite", "postgres"):
            engine = self._engine()
            with engine.begin() as conn:
                conn.execute(
                    sa.text("DELETE FROM pipeforge_model_chunks WHERE version = :v"), {"v": version}
                )
                conn.execute(
                    sa.text("INSERT INTO pipeforge_model_chunks VALUES (:v, 0, :d)"),
                    {"v": version, "d": zlib.compress(raw)},
                )
                conn.execute(
                    sa.text("UPDATE pipeforge_models SET chunks = 1 WHERE version = :v"),
                    {"v": version},
                )
            engine.dispose()
        elif self.kind == "file":
            Path(self.model_file(version)).write_bytes(
                b"pipeforge-model 1 pickle zlib\n" + zlib.compress(raw)
            )
        else:
            Path(self.model_file(version)).write_bytes(gzip.compress(raw))

    def metadata(self, version: int) -> dict:
        return next(m for m in self.listing() if m["version"] == version)

    def listing(self) -> list[dict]:
        from pipeforge.config import load_config

        config = load_config([str(self.config_file)])
        return config["model_persister"].list_models()

    def forget_digest(self, version: int) -> None:
        """Make model ``version`` look as stores written before digests have it."""
        if self.kind in ("sqlite", "postgres"):
            engine = self._engine()
            with engine.begin() as conn:
                query = "SELECT metadata FROM pipeforge_models WHERE version = :v"
                entry = json.loads(conn.execute(sa.text(query), {"v": version}).scalar_one())
                del entry["model_digest"]
                conn.execute(
                    sa.text("UPDATE pipeforge_models SET metadata = :m WHERE version = :v"),
                    {"m": json.dumps(entry), "v": version},
                )
            engine.dispose()
            return
        if self.kind == "file":
            path = self.tmp / "models" / "model-metadata.json"
            entries = json.loads(path.read_text())
        else:
            path = self.tmp / "fl" / "model-metadata.json"
            data = json.loads(path.read_text())
            entries = data["models"]
        for entry in entries:
            if entry["version"] == version:
                del entry["model_digest"]
        path.write_text(json.dumps(entries if self.kind == "file" else data))


def _inflate(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        z = zlib.decompressobj()
        out += z.decompress(rest)
        rest = z.unused_data
    return out


@pytest.fixture(params=KINDS)
def project(request, tmp_path, monkeypatch):
    url = request.getfixturevalue("postgres_database_url") if request.param == "postgres" else None
    return Project(request.param, tmp_path, monkeypatch, url)


def predict(project: Project):
    """``/predict`` of a fresh app on the project's config (model cache in front of the store)."""
    config = load_config([str(project.config_file)], __mode__="predict")
    app = create_app(config)
    try:
        response = app.test_client().get("/predict", query_string=SETOSA)
        return response.status_code, response.get_json()
    finally:
        app.extensions["pipeforge"].stop()


def error_line(err: str, prog: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- skops ------------------------------------------------------------------------


def test_skops_store_round_trip(project, capsys):
    project.write(format="skops")
    code, out, err = project.run(scripts.fit_main, [], capsys)
    assert code == 0, err
    assert project.stored_format(1) == "skops"
    assert project.stored_bytes(1)[:2] == b"PK"  # a skops zip, no pickle
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 0 and out.startswith("score: "), err
    assert float(out.split()[1]) > 0.9
    project.write(format="skops", cached=True)
    status, body = predict(project)
    assert (status, body["result"]) == (200, "Iris-setosa"), body
    assert project.metadata(1)["model_digest"].startswith("sha256:")


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_skops_trusts_only_listed_types(kind, tmp_path, monkeypatch, capsys):
    project = Project(kind, tmp_path, monkeypatch, None)
    marker = tmp_path / "built"
    monkeypatch.setenv("PIPEFORGE_TEST_MARKER", str(marker))
    project.model = {
        "__factory__": "tests.integrity_models.MarkedLogisticRegression",
        "max_iter": 1000,
    }
    name = "tests.integrity_models.MarkedLogisticRegression"

    project.write(format="skops")  # a model skops would not load is refused when fitted
    code, out, err = project.run(scripts.fit_main, [], capsys)
    assert code == 1
    assert "holds types skops does not trust: " + name in error_line(err, "pf-fit")
    assert project.listing() == []

    project.write(format="skops", trusted_types=[name])
    code, out, err = project.run(scripts.fit_main, [], capsys)
    assert code == 0, err

    project.write(format="skops")  # the type is no longer trusted: refused, never built
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    line = error_line(err, "pf-test")
    assert f"holds types that are not trusted ('{name}'); refused, not loaded" in line
    assert "trusted_types" in line
    assert not marker.exists()
    project.write(format="skops", cached=True)
    status, body = predict(project)
    assert status == 503, body
    assert not marker.exists()

    project.write(format="skops", trusted_types=[name])
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 0, err
    assert marker.read_text() == "built\n"  # the same file loads once its type is trusted


def test_skops_store_refuses_pickles_unless_allowed(tmp_path, monkeypatch, capsys):
    project = Project("sqlite", tmp_path, monkeypatch, None)
    assert project.run(scripts.fit_main, [], capsys)[0] == 0  # a pickle
    project.write(format="skops")
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "model version 1 is stored as a pickle pickle" in error_line(err, "pf-test")
    project.write(format="skops", allow_pickle=True)
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"format": "skop"}, "parameter 'format' of Database must be one of pickle, skops"),
        ({"trusted_types": "sklearn.tree._tree.Tree"}, "parameter 'trusted_types' of Database"),
        ({"allow_pickle": "yes"}, "parameter 'allow_pickle' of Database must be true or false"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, monkeypatch, capsys, options, problem):
    project = Project("sqlite", tmp_path, monkeypatch, None)
    project.write(**options)
    code, out, err = project.run(scripts.fit_main, [], capsys)
    assert code == 2
    assert problem in error_line(err, "pf-fit")


# -- checked pickles ------------------------------------------------------------------


def test_tampered_pickle_is_refused_never_unpickled(project, tmp_path, capsys):
    assert project.run(scripts.fit_main, [], capsys)[0] == 0
    digest = project.metadata(1)["model_digest"]
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    marker = tmp_path / "pwned"
    project.replace_model(1, payload(str(marker)))

    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    line = error_line(err, "pf-test")
    assert "model version 1 does not match its recorded SHA-256 digest" in line
    assert "refused, not loaded" in line
    project.write(cached=True)
    status, body = predict(project)
    assert status == 503, body
    assert body["metadata"]["status"] == "ERROR"
    assert not marker.exists()

    # the same bytes in a store that records no digest (as before) would have run
    project.write()
    project.forget_digest(1)
    project.run(scripts.test_main, [], capsys)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["sqlite", "file", "filelike"])
def test_model_key_signs_and_refuses(kind, tmp_path, monkeypatch, capsys):
    project = Project(kind, tmp_path, monkeypatch, None)
    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "first key")
    assert project.run(scripts.fit_main, [], capsys)[0] == 0
    assert project.metadata(1)["model_digest"].startswith("hmac-sha256:")
    assert project.run(scripts.test_main, [], capsys)[0] == 0

    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "another key")
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "does not match its recorded HMAC" in error_line(err, "pf-test")

    monkeypatch.delenv("PIPEFORGE_MODEL_KEY")
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "was signed with a model key; set PIPEFORGE_MODEL_KEY" in error_line(err, "pf-test")

    key_file = tmp_path / "model.key"
    key_file.write_text("first key\n")
    monkeypatch.setenv("PIPEFORGE_MODEL_KEY_FILE", str(key_file))
    assert project.run(scripts.test_main, [], capsys)[0] == 0

    # a model written without the key (by someone who can write the store) is refused
    monkeypatch.delenv("PIPEFORGE_MODEL_KEY_FILE")
    assert project.run(scripts.fit_main, [], capsys)[0] == 0
    assert project.metadata(2)["model_digest"].startswith("sha256:")
    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "first key")
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "model version 2 was stored without the model key" in error_line(err, "pf-test")
    project.write(cached=True)
    assert predict(project)[0] == 503


def test_digest_cannot_be_changed_through_metadata(tmp_path, monkeypatch, capsys):
    project = Project("sqlite", tmp_path, monkeypatch, None)
    assert project.run(scripts.fit_main, [], capsys)[0] == 0
    persister = load_config([str(project.config_file)])["model_persister"]
    with pytest.raises(ValueError, match="model_digest cannot be changed"):
        persister.update_metadata(1, {"model_digest": "sha256:" + "0" * 64})
    assert project.run(scripts.test_main, [], capsys)[0] == 0


# -- pf-upgrade on a store written before digests ---------------------------------


def test_pf_upgrade_adds_digests_to_an_old_store(project, monkeypatch, caplog, capsys):
    for _ in range(2):
        assert project.run(scripts.fit_main, [], capsys)[0] == 0
    for version in (1, 2):
        project.forget_digest(version)  # as stores written before this change are
    assert "model_digest" not in project.metadata(1)

    code, out, err = project.run(scripts.test_main, [], capsys)  # still loads, with a warning
    assert code == 0, err
    assert "model version 2 carries no digest" in caplog.text
    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "k")
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "model version 2 carries no digest and a model key" in error_line(err, "pf-test")

    monkeypatch.delenv("PIPEFORGE_MODEL_KEY")
    code, out, err = project.run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert "added SHA-256 digests to model versions 1, 2" in out
    digests = [project.metadata(v)["model_digest"] for v in (1, 2)]
    assert all(d.startswith("sha256:") for d in digests)
    code, out, err = project.run(scripts.upgrade_main, [], capsys)
    assert (code, out) == (0, "Nothing to upgrade\n"), err

    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "k")  # signing vouches for the store as it is
    code, out, err = project.run(scripts.upgrade_main, [], capsys)
    assert "signed model versions 1, 2 with the model key (HMAC)" in out, err
    assert project.run(scripts.test_main, [], capsys)[0] == 0
    assert project.run(scripts.test_main, ["--model-version=1"], capsys)[0] == 0


def test_pf_upgrade_leaves_a_tampered_model_refused(tmp_path, monkeypatch, capsys):
    project = Project("sqlite", tmp_path, monkeypatch, None)
    assert project.run(scripts.fit_main, [], capsys)[0] == 0
    marker = tmp_path / "pwned"
    project.replace_model(1, payload(str(marker)))
    monkeypatch.setenv("PIPEFORGE_MODEL_KEY", "k")
    code, out, err = project.run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert "model versions 1 do not match their recorded digest" in out
    assert project.metadata(1)["model_digest"].startswith("sha256:")  # not signed
    assert project.run(scripts.test_main, [], capsys)[0] == 1
    assert not marker.exists()


# -- docs/persistence.md ----------------------------------------------------------


def _doc_yaml(section: str) -> dict:
    text = (Path(__file__).resolve().parent.parent / "docs" / "persistence.md").read_text()
    block = text.split(f"\n## {section}\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)


def test_docs_skops_example_stores_a_forest(tmp_path, monkeypatch, capsys):
    project = Project("sqlite", tmp_path, monkeypatch, None)
    project.model = {"__factory__": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 5}
    project.store = _doc_yaml("skops")["model_persister"]
    project.write()
    code, out, err = project.run(scripts.fit_main, [], capsys)
    assert code == 0, err
    assert (tmp_path / "model.db").exists()
    project.url = f"sqlite:///{tmp_path / 'model.db'}"
    assert project.stored_format(1) == "skops"
    assert project.run(scripts.test_main, [], capsys)[0] == 0
    project.write(trusted_types=None)  # without the doc's trusted type the forest is refused
    code, out, err = project.run(scripts.test_main, [], capsys)
    assert code == 1
    assert "('sklearn.tree._tree.Tree')" in error_line(err, "pf-test")


def test_docs_onnx_example_builds_the_model(tmp_path):
    from pipeforge.onnx_model import OnnxModel

    config = iris_config_dict(tmp_path)
    config["dataset_loader_test"] = config["dataset_loader_train"]
    config.update(_doc_yaml("Models compiled to ONNX"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    model = load_config([str(path)])["model"]
    assert isinstance(model, OnnxModel)
    assert model.estimator.n_estimators == 500
    assert callable(model.check_data)
