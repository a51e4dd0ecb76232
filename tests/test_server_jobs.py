"""The web service's background jobs: states, errors, pruning."""

from __future__ import annotations

import threading
import time

import pytest

from pipeforge.errors import DataError
from pipeforge.jobs import JobRunner
from pipeforge.process_store import ProcessStore


def wait(runner, job_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = runner.get(job_id)
        if record is None or record["status"] != "running":
            return record
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still running")


@pytest.fixture
def store():
    return ProcessStore()


@pytest.fixture
def runner(store):
    runner = JobRunner(store, max_workers=2)
    yield runner
    runner.shutdown()


def test_a_job_reports_running_then_finished(runner, store):
    release = threading.Event()
    job_id = runner.submit(lambda: release.wait(10) and {"model_version": 3}, name="fit")
    record = runner.get(job_id)
    assert record["status"] == "running"
    assert record["func"] == "fit"
    assert record["submitted"] and record["finished"] is None
    release.set()
    record = wait(runner, job_id)
    assert record["status"] == "finished"
    assert record["info"] == {"model_version": 3}
    assert record["started"] <= record["finished"]
    assert store["process_metadata"]["jobs"][job_id]["status"] == "finished"


def test_failures_are_recorded_without_internals(runner):
    def missing_data():
        raise DataError("cannot read 'iris.data': no such file")

    def bug():
        raise KeyError("internal detail")

    record = wait(runner, runner.submit(missing_data))
    assert record["status"] == "error"
    assert "iris.data" in record["error"]
    record = wait(runner, runner.submit(bug))
    assert record["status"] == "error"
    assert "internal detail" not in record["error"]
    assert "KeyError" in record["error"]


def test_objects_are_reported_by_repr(runner):
    class Result:
        def __repr__(self):
            return "<Result 7>"

    assert wait(runner, runner.submit(Result))["info"] == "<Result 7>"


def test_only_the_newest_finished_jobs_are_kept(store):
    runner = JobRunner(store, max_workers=1, keep=2)
    ids = [runner.submit(lambda i=i: i) for i in range(5)]
    for job_id in ids:
        wait(runner, job_id)
    runner.shutdown()
    assert list(runner.snapshot()) == ids[-2:]


def test_old_finished_jobs_are_pruned_but_running_ones_stay(store):
    runner = JobRunner(store, max_workers=2, max_age=0.05)
    release = threading.Event()
    running = runner.submit(release.wait, 10)
    old = runner.submit(lambda: "old")
    wait(runner, old)
    time.sleep(0.1)
    new = runner.submit(lambda: "new")
    wait(runner, new)
    jobs = runner.snapshot()
    assert old not in jobs
    assert jobs[new]["info"] == "new"
    assert jobs[running]["status"] == "running"
    release.set()
    runner.shutdown()


def test_snapshot_is_a_copy(runner):
    job_id = runner.submit(lambda: None)
    wait(runner, job_id)
    snapshot = runner.snapshot()
    snapshot[job_id]["status"] = "tampered"
    assert runner.get(job_id)["status"] == "finished"


def test_without_a_process_store(runner):
    private = JobRunner()
    assert wait(private, private.submit(lambda: 1))["info"] == 1
    private.shutdown()


def test_no_jobs_after_shutdown(store):
    runner = JobRunner(store)
    runner.submit(lambda: None)
    runner.shutdown()
    # A new pool starts on demand: a server that stopped its jobs can still take new ones.
    assert wait(runner, runner.submit(lambda: 2))["info"] == 2
    runner.shutdown()


def test_a_drivers_error_text_stays_out_of_the_job_record(runner):
    from pipeforge.dataset import SQL

    # Nothing listens on port 1: the driver fails, and its text names host and port.
    loader = SQL(url="postgresql://reader:s3cret-pw@127.0.0.1:1/models", sql="select 1")
    record = wait(runner, runner.submit(loader, name="load"), timeout=30)
    assert record["status"] == "error"
    assert record["error"] == (
        "DataError: cannot read dataset from postgresql://reader:***@127.0.0.1:1/models: "
        "OperationalError (see the server log)"
    )
