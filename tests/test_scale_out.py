"""Many hosts on one PostgreSQL store, jobs on RQ workers: real gunicorn, pf-worker, Redis.

Two gunicorn masters on separate ports stand for two hosts; they share one
PostgreSQL database (models and op store) and, where jobs are queued, one Redis.
"""

from __future__ import annotations

import os
import pprint
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from pipeforge.config import load_config
from pipeforge.pipelines import build_op_store, build_pipelines
from pipeforge.pipelines.sync import record_load
from pipeforge.training import fit
from tests.fixtures.gunicorn import IRIS_FEATURES, iris_config_dict
from tests.fixtures.workers import BIN, ROOT

pytestmark = pytest.mark.slow

IRIS = ROOT / "examples" / "iris"
SAMPLE = dict(zip(IRIS_FEATURES, (6.3, 2.5, 4.9, 1.5), strict=True))
PIPELINE_INPUT = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def scale_config(tmp_path: Path, database_url: str, **entries) -> Path:
    """The iris service and pipelines on one database, following it every second."""
    pipelines = yaml.safe_load((IRIS / "pipelines.yaml").read_text())
    pipelines["ops"]["iris"]["loader"]["path"] = str(IRIS / "iris.data")
    config = iris_config_dict(tmp_path, **entries)
    config["model_persister"]["impl"]["url"] = database_url
    config.update(
        ops=pipelines["ops"],
        pipelines=pipelines["pipelines"],
        op_store={"url": database_url},
        pipelines_refresh={"freq": "SECONDLY", "interval": 1},
        pipelines_admin={"allow_load": True, "allow_save": True},
    )
    config["security"]["unguarded"] += ["pipelines.load", "pipelines.save"]
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat(config, sort_dicts=False))
    return path


def train(pipeline, store) -> None:
    """A new trained version of every op of ``pipeline``, saved."""
    pipeline.run()
    pipeline.save(store)


def script(name: str, *args, config: Path):
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def poll(fetch, done, timeout: float = 60.0, what: str = "the condition"):
    """Call ``fetch()`` until ``done(value)``; return the value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s; last: {value!r}")


def steadily(fetch, expected, times: int = 10, timeout: float = 30.0, what: str = "value"):
    """Wait until ``times`` answers in a row equal ``expected`` (every worker has switched)."""
    deadline = time.monotonic() + timeout
    streak, value = 0, None
    while time.monotonic() < deadline:
        value = fetch()
        streak = streak + 1 if value == expected else 0
        if streak >= times:
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not steadily {expected!r} within {timeout} s; last {value!r}")


def test_jobs_run_on_a_worker_and_are_read_from_another_host(
    tmp_path, postgres_database_url, redis_url, gunicorn_server, pf_worker
):
    queue = {"__factory__": "pipeforge.jobs.rq.RQJobQueue", "url": redis_url}
    config = scale_config(tmp_path, postgres_database_url, job_queue=queue)
    _, worker = pf_worker(config, "--heartbeat=1")
    host_a = gunicorn_server(config, workers=1)
    host_b = gunicorn_server(config, workers=1)

    job_id = requests.post(f"{host_a}/fit", timeout=10).json()["job_id"]
    record = poll(
        lambda: requests.get(f"{host_b}/jobs/{job_id}", timeout=10).json(),
        lambda r: r.get("status") in ("finished", "error"),
        what="the fit job",
    )
    assert record["status"] == "finished", record
    assert record["worker"] == worker and record["info"]["model_version"] == 1
    alive = requests.get(f"{host_b}/alive", timeout=10).json()
    assert alive["process_metadata"]["jobs"][job_id]["status"] == "finished"
    for host in (host_a, host_b):
        answer = poll(
            lambda host=host: requests.get(f"{host}/predict", params=SAMPLE, timeout=10),
            lambda r: r.status_code == 200,
            what=f"serving the fitted model on {host}",
        )
        assert answer.json()["result"].startswith("Iris-")

    refresh_id = requests.post(f"{host_b}/update-model-cache", timeout=10).json()["job_id"]
    refresh = poll(
        lambda: requests.get(f"{host_a}/jobs/{refresh_id}", timeout=10).json(),
        lambda r: r.get("status") in ("finished", "error"),
        what="the cache update",
    )
    assert (refresh["status"], refresh["worker"]) == ("finished", worker), refresh

    body = {"use_worker": True, "save": True}
    answer = requests.post(f"{host_a}/pipelines/train_iris/main", json=body, timeout=10)
    assert answer.status_code == 202 and answer.json()["job_status"] == "queued"
    run_id = answer.json()["job_id"]
    run = poll(
        lambda: requests.get(f"{host_b}/pipelines/jobs/{run_id}", timeout=10).json(),
        lambda r: r.get("job_status") in ("done", "failed"),
        what="the pipeline run",
    )
    assert run["job_status"] == "done" and run["worker"] == worker, run
    assert sorted(s.split("@")[0] for s in run["saved"]) == ["classifier", "iris", "pca"]

    body = {"use_worker": True, "pipeline_input": "not samples"}
    requests.post(f"{host_b}/pipelines/predict_iris/load", timeout=30).raise_for_status()
    failed_id = requests.post(
        f"{host_b}/pipelines/predict_iris/main", json=body, timeout=10
    ).json()["job_id"]
    failed = poll(
        lambda: requests.get(f"{host_a}/pipelines/jobs/{failed_id}", timeout=10).json(),
        lambda r: r.get("job_status") in ("done", "failed"),
        what="the failing pipeline run",
    )
    assert failed["job_status"] == "failed" and "pca" in failed["error_message"], failed


def test_activation_and_pipeline_loads_reach_every_worker_of_every_host_under_load(
    tmp_path, postgres_database_url, gunicorn_server
):
    config = scale_config(tmp_path, postgres_database_url)
    loaded_config = load_config([str(config)])
    persister = loaded_config["model_persister"]
    for activate in (True, False):
        fit(
            loaded_config["dataset_loader_train"],
            loaded_config["model"],
            persister,
            activate=activate,
        )
    pipelines, store = build_pipelines(loaded_config), build_op_store(loaded_config)
    train(pipelines["train_iris"], store)
    pipelines["predict_iris"].load(store)
    record_load(store, pipelines["predict_iris"])
    hosts = [gunicorn_server(config, workers=2), gunicorn_server(config, workers=2)]

    failures: list[str] = []
    counts = {"requests": 0}
    stop = threading.Event()

    def load(host: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            for method, url, kwargs in (
                ("GET", f"{host}/predict", {"params": SAMPLE}),
                (
                    "POST",
                    f"{host}/pipelines/predict_iris/main",
                    {"json": {"pipeline_input": PIPELINE_INPUT}},
                ),
            ):
                try:
                    answer = session.request(method, url, timeout=30, **kwargs)
                except requests.RequestException as exc:
                    failures.append(f"{url}: {exc}")
                    continue
                counts["requests"] += 1
                if answer.status_code != 200:
                    failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
            stop.wait(0.02)  # steady load, leaving the 2-core test machine room to switch

    threads = [threading.Thread(target=load, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    try:
        script("pf-admin", "activate", "2", config=config)
        for host in hosts:
            steadily(
                lambda host=host: requests.get(f"{host}/alive", timeout=10).json()["model"][
                    "metadata"
                ]["version"],
                2,
                what=f"the model served by {host}",
            )
        train(pipelines["train_iris"], store)
        answer = requests.post(f"{hosts[0]}/pipelines/predict_iris/load", timeout=30)
        assert answer.status_code == 200, answer.text
        loaded = answer.json()["versions"]
        for host in hosts:
            steadily(
                lambda host=host: requests.post(
                    f"{host}/pipelines/predict_iris/versions", timeout=10
                ).json(),
                loaded,
                what=f"the pipeline versions served by {host}",
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    store.dispose()
    assert failures == []
    assert counts["requests"] > 20
