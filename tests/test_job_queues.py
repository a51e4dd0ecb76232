"""One job interface, two implementations: threads of this process and RQ workers on Redis.

The contract suite runs over both; the RQ jobs are run by a real ``pf-worker``
process on a real Redis server, with the worker's own config.
"""

from __future__ import annotations

import os
import pprint
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeforge.errors import ConfigError, JobQueueError
from pipeforge.jobs import JobQueue, JobRunner, fit_job, wait_for_job
from pipeforge.jobs.rq import RQJobQueue
from pipeforge.process_store import ProcessStore
from tests import scale_helpers
from tests.fixtures.gunicorn import iris_config_dict
from tests.fixtures.postgres import _free_port
from tests.fixtures.workers import BIN, ROOT

pytestmark = pytest.mark.slow


def write_config(path: Path, entries: dict) -> Path:
    path.write_text(pprint.pformat(entries, sort_dicts=False))
    return path


#: the test jobs of tests/scale_helpers.py, which workers run besides pipeforge's own
HELPER_JOBS = [
    f"tests.scale_helpers.{name}" for name in ("add", "missing_data", "bug", "wait_for_file")
]


def queue_entry(redis_url: str, **options) -> dict:
    return {"__factory__": "pipeforge.jobs.rq.RQJobQueue", "url": redis_url, **options}


@pytest.fixture(scope="module")
def contract_worker(redis_server_url, tmp_path_factory):
    """One ``pf-worker`` for the whole contract suite, on a queue of its own."""
    from tests.fixtures.gunicorn import stop_process
    from tests.fixtures.workers import wait_for_text

    name = f"contract-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("contract")
    entry = queue_entry(redis_server_url, name=name, abandoned_after=5, jobs=HELPER_JOBS)
    config = write_config(folder / "worker.py", {"x-marker": "worker", "job_queue": entry})
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    log = folder / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "pf-worker"), "--heartbeat=1"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_text(proc, log, "Listening on")
        yield RQJobQueue(redis_server_url, name, abandoned_after=5, jobs=HELPER_JOBS)
    finally:
        stop_process(proc)


@pytest.fixture(params=["threads", "rq"])
def runner(request):
    """``(queue, config, marker)``: a job queue, the config to submit with, what jobs see."""
    if request.param == "threads":
        queue = JobRunner(ProcessStore())
        yield queue, {"x-marker": "web process"}, "web process"
        queue.shutdown()
        return
    yield request.getfixturevalue("contract_worker"), None, "worker"


def finish(queue, job_id, timeout=60.0):
    record = wait_for_job(queue, job_id, timeout=timeout, poll=0.05)
    assert record is not None and record["status"] in ("finished", "error"), record
    return record


def test_a_job_reports_its_result_and_times(runner):
    queue, config, marker = runner
    assert isinstance(queue, JobQueue)
    job_id = queue.enqueue(scale_helpers.add, config, name="adding", a=2, b=3)
    record = finish(queue, job_id)
    assert record["job_id"] == job_id
    assert record["func"] == "adding"
    assert record["status"] == "finished"
    assert record["info"] == {"sum": 5, "marker": marker}
    assert record["submitted"] <= record["started"] <= record["finished"]
    assert queue.snapshot()[job_id]["status"] == "finished"


def test_failures_record_a_message_without_internals(runner):
    queue, config, _ = runner
    record = finish(queue, queue.enqueue(scale_helpers.missing_data, config))
    assert record["status"] == "error"
    assert "DataError" in record["error"] and "nowhere.csv" in record["error"]
    record = finish(queue, queue.enqueue(scale_helpers.bug, config))
    assert record["status"] == "error"
    assert "KeyError" in record["error"] and "internal detail" not in record["error"]


def test_a_running_job_reads_running_until_it_ends(runner, tmp_path):
    queue, config, _ = runner
    release = tmp_path / "release"
    job_id = queue.enqueue(scale_helpers.wait_for_file, config, path=str(release))
    seen = []
    deadline = time.monotonic() + 60
    while "running" not in seen and time.monotonic() < deadline:
        seen.append(queue.get(job_id)["status"])
        time.sleep(0.02)
    assert "running" in seen
    assert set(seen) <= {"queued", "running"}
    release.touch()
    assert finish(queue, job_id)["info"] == "released"


def test_unknown_jobs_are_none(runner):
    queue, _, _ = runner
    assert queue.get("0123-no-such-job") is None
    assert "0123-no-such-job" not in queue.snapshot()


# -- RQ only ------------------------------------------------------------------------


def test_rq_queue_checks_its_parameters_at_first_use(tmp_path):
    threads = threading.active_count()
    queue = RQJobQueue(url="http://127.0.0.1:1/", name="")
    assert threading.active_count() == threads and "_redis" not in vars(queue)
    with pytest.raises(ConfigError, match="parameter 'url' of RQJobQueue"):
        queue.get("x")
    with pytest.raises(ConfigError, match="parameter 'keep' of RQJobQueue"):
        RQJobQueue("redis://127.0.0.1:1/0", keep=0).get("x")


def test_an_unreachable_redis_is_one_clear_error():
    queue = RQJobQueue(f"redis://127.0.0.1:{_free_port()}/0", jobs=HELPER_JOBS)
    with pytest.raises(JobQueueError, match="cannot submit a job on the job queue 'pipeforge'"):
        queue.enqueue(scale_helpers.add, None, a=1, b=2)


def alive(pid: int, wait: float = 5.0) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped does not)."""
    import psutil

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        time.sleep(0.1)
    return True


def run(script: str, *args, config: Path, timeout: float = 120.0):
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(BIN / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=config.parent,
    )


def test_pf_worker_usage_and_config_errors(tmp_path):
    result = run("pf-worker", "-h", config=tmp_path / "none.py")
    assert result.returncode == 0 and "--burst" in result.stdout and "<queue>" in result.stdout
    config = write_config(tmp_path / "config.py", {"x-marker": 1})
    result = run("pf-worker", "--burst", config=config)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "job_queue" in result.stderr
    assert str(config) in result.stderr
    result = run("pf-fit", "--queue", config=config)
    assert result.returncode == 2 and "needs a 'job_queue' entry" in result.stderr
    result = run("pf-worker", "--heartbeat=0", config=config)
    assert result.returncode == 2 and "--heartbeat" in result.stderr


def test_a_burst_worker_runs_what_is_waiting_and_exits(tmp_path, redis_url):
    config = write_config(
        tmp_path / "config.py", {"job_queue": queue_entry(redis_url, jobs=HELPER_JOBS)}
    )
    queue = RQJobQueue(redis_url, jobs=HELPER_JOBS)
    jobs = [queue.enqueue(scale_helpers.add, None, a=i, b=1) for i in range(3)]
    assert {queue.get(j)["status"] for j in jobs} == {"queued"}
    result = run("pf-worker", "--burst", config=config)
    assert result.returncode == 0, result.stderr
    assert [queue.get(j)["info"]["sum"] for j in jobs] == [1, 2, 3]


def test_pf_fit_and_grid_search_run_on_a_worker(
    tmp_path, redis_url, pf_worker, monkeypatch, capsys
):
    from pipeforge.cli.scripts import fit_main, grid_search_main

    entries = iris_config_dict(tmp_path, job_queue=queue_entry(redis_url))
    entries["grid_search"] = {"param_grid": {"C": [0.1, 1.0]}, "cv": 3}
    config = write_config(tmp_path / "config.py", entries)
    _, worker = pf_worker(config)
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    assert fit_main(["--queue", "--evaluate"]) == 0
    out, err = capsys.readouterr()
    assert "Wrote model with version 1" in out and "score_train: 0." in out
    assert f"finished on {worker}" in err
    assert grid_search_main(["--queue", "--save-results=results.csv"]) == 0
    assert "Best parameters: {'C': 1.0}" in capsys.readouterr().out
    import pandas as pd

    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 2 and "mean_test_score" in results


def test_a_worker_killed_mid_fit_leaves_the_job_failed_and_no_model(tmp_path, redis_url, pf_worker):
    pid_file = tmp_path / "horse.pid"
    model = {
        "__factory__": "tests.scale_models.SlowClassifier",
        "seconds": 120,
        "pid_file": str(pid_file),
    }
    entries = iris_config_dict(
        tmp_path, model=model, job_queue=queue_entry(redis_url, abandoned_after=4)
    )
    config = write_config(tmp_path / "config.py", entries)
    worker, name = pf_worker(config, "--heartbeat=1")
    log = tmp_path / "pf-worker-0.log"
    queue = RQJobQueue(redis_url, abandoned_after=4)
    job_id = queue.enqueue(fit_job, None, name="fit")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (pid_file.exists() and pid_file.read_text()):
        time.sleep(0.05)  # the fit writes its pid: it runs
    assert queue.get(job_id)["status"] == "running", log.read_text()
    horse = int(pid_file.read_text())

    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    killed = time.monotonic()
    record = wait_for_job(queue, job_id, timeout=30, poll=0.2)
    assert record["status"] == "error", (record, log.read_text())
    assert time.monotonic() - killed < 30
    assert f"worker running this job ({name}) sent no heartbeat" in record["error"]
    assert not alive(horse), log.read_text()  # the fit died with its worker
    listed = run("pf-list", "--json", config=config)
    assert listed.returncode == 0 and '"models": []' in listed.stdout, listed


def test_alive_still_answers_when_redis_is_down(tmp_path):
    from pipeforge.config import load_config
    from pipeforge.server import create_app

    unreachable = queue_entry(f"redis://127.0.0.1:{_free_port()}/0")
    config = write_config(tmp_path / "config.py", iris_config_dict(tmp_path, job_queue=unreachable))
    client = create_app(load_config([str(config)])).test_client()
    response = client.get("/alive")
    assert response.status_code == 503  # no model yet, but an answer
    metadata = response.get_json()["process_metadata"]
    assert metadata["jobs"] == {} and "job queue cannot be reached" in metadata["jobs_error"]
    assert "Connection refused" not in metadata["jobs_error"]  # no driver text for clients


def test_fit_answers_503_while_redis_is_down_and_hides_its_password(tmp_path):
    from pipeforge.config import load_config
    from pipeforge.server import create_app

    port = _free_port()
    unreachable = queue_entry(f"redis://:s3cret@127.0.0.1:{port}/0")
    config = write_config(tmp_path / "config.py", iris_config_dict(tmp_path, job_queue=unreachable))
    response = create_app(load_config([str(config)])).test_client().post("/fit")
    assert response.status_code == 503
    message = response.get_json()["metadata"]["error_message"]
    assert (
        f"cannot submit a job on the job queue 'pipeforge' at redis://***@127.0.0.1:{port}/0"
        in message
    )
    assert "s3cret" not in message
