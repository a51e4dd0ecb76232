"""Pipelines across processes: chariots' use_worker switches, recorded loads, the op store's path."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import yaml

from pipeforge.cli import pipelines as cli
from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.jobs.rq import RQJobQueue
from pipeforge.pipelines.sync import should_use_worker
from pipeforge.server import create_app

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "examples" / "iris"
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
LEVELS = (None, True, False)


#: /load and /save (and "save": true) on, named unguarded (tests/test_security_guards.py guards them)
OPEN_ADMIN = {
    "pipelines_admin": {"allow_load": True, "allow_save": True},
    "security": {"unguarded": ["pipelines.load", "pipelines.save"]},
}


def pipelines_config(tmp_path: Path, **entries) -> Path:
    """examples/iris/pipelines.yaml with its op store in ``tmp_path`` and ``entries`` added."""
    config = yaml.safe_load((IRIS / "pipelines.yaml").read_text())
    config["ops"]["iris"]["loader"]["path"] = str(IRIS / "iris.data")
    config["op_store"] = {"url": f"sqlite:///{tmp_path}/ops.db"}
    config.update(OPEN_ADMIN)
    config.update(entries)
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def make_app():
    apps = []

    def make(path):
        app = create_app(load_config([str(path)]))
        apps.append(app)
        return app

    yield make
    for app in apps:
        service = app.extensions["pipeforge_pipelines"]
        service.shutdown()
        service.store.dispose()


def test_an_explicit_false_anywhere_wins():
    # chariots: any False -> in the server; else any True -> on a worker; all unset -> server.
    assert should_use_worker(None, None, None) is False
    assert should_use_worker(True, None, None) is True
    assert should_use_worker(None, True, None) is True
    assert should_use_worker(None, None, True) is True
    assert should_use_worker(True, False, True) is False
    assert should_use_worker(False, True, True) is False
    assert should_use_worker(True, True, False) is False
    assert should_use_worker(True, True, True) is True


@pytest.mark.slow
@pytest.mark.parametrize("app_level", LEVELS)
def test_the_three_switches_over_http(tmp_path, redis_url, make_app, app_level):
    train_pca = yaml.safe_load((IRIS / "pipelines.yaml").read_text())["pipelines"]["train_pca"]
    pipelines = {f"pca_{level}": {**train_pca, "use_worker": level} for level in LEVELS}
    entries = {
        "job_queue": {"__factory__": "pipeforge.jobs.rq.RQJobQueue", "url": redis_url},
        "use_worker": app_level,
    }
    config = pipelines_config(tmp_path, **entries)
    raw = yaml.safe_load(config.read_text())
    raw["pipelines"].update(pipelines)
    config.write_text(yaml.safe_dump(raw))
    client = make_app(config).test_client()
    queue = RQJobQueue(redis_url)

    for pipeline_level, request_level in itertools.product(LEVELS, LEVELS):
        body = {} if request_level is None else {"use_worker": request_level}
        response = client.post(f"/pipelines/pca_{pipeline_level}/main", json=body)
        levels = (app_level, pipeline_level, request_level)
        on_worker = False not in levels and True in levels
        case = f"app={app_level} pipeline={pipeline_level} request={request_level}"
        if not on_worker:
            assert response.status_code == 200, case
            assert response.get_json()["job_status"] == "done", case
            continue
        assert response.status_code == 202, case
        job_id = response.get_json()["job_id"]
        assert queue.get(job_id)["status"] == "queued", case  # no pf-worker runs here
        job = client.get(f"/pipelines/jobs/{job_id}").get_json()
        assert (job["pipeline"], job["job_status"]) == (f"pca_{pipeline_level}", "queued")


def test_a_bad_app_level_switch_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="use_worker: must be true or false; got 'yes'"):
        create_app(load_config([str(pipelines_config(tmp_path, use_worker="yes"))]))


@pytest.mark.slow
def test_every_process_follows_the_recorded_load(tmp_path, make_app):
    config = pipelines_config(tmp_path)
    first, second = make_app(config), make_app(config)
    a, b = first.test_client(), second.test_client()
    assert a.post("/pipelines/train_iris/main", json={"save": True}).status_code == 200
    loaded = a.post("/pipelines/predict_iris/load").get_json()["versions"]
    sync = second.extensions["pipeforge_pipelines"].sync
    assert sync.follow() == ["predict_iris"]
    assert b.post("/pipelines/predict_iris/versions").get_json() == loaded
    assert sync.follow() == []  # nothing new

    # Newer versions trained and saved, but not loaded: a new process serves the recorded ones.
    assert b.post("/pipelines/train_iris/main", json={"save": True}).status_code == 200
    late = make_app(config).test_client()
    answer = late.post("/pipelines/predict_iris/main", json={"pipeline_input": SAMPLE})
    assert answer.status_code == 200 and answer.get_json()["versions"] == loaded

    reloaded = b.post("/pipelines/predict_iris/load").get_json()["versions"]
    assert reloaded != loaded
    assert first.extensions["pipeforge_pipelines"].sync.follow() == ["predict_iris"]
    answer = a.post("/pipelines/predict_iris/main", json={"pipeline_input": SAMPLE})
    assert answer.get_json()["versions"] == reloaded


def test_the_op_store_file_is_next_to_the_config(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("pipelines.yaml", "iris.data"):
        shutil.copy(IRIS / name, folder / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("PIPEFORGE_OP_STORE", raising=False)
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(folder / "pipelines.yaml"))
    assert cli.main(["run", "train_iris", "--save"]) == 0
    assert cli.main(["load", "predict_iris"]) == 0
    assert '"is_loaded": true' in capsys.readouterr().out
    assert (folder / "iris-ops.db").exists()
    assert list(elsewhere.iterdir()) == []
