"""No code from the queue, and workers that always stop.

Jobs travel through Redis as JSON: a job planted in Redis the way an attacker
with access to it would write one (a pickle that makes a folder when loaded,
or JSON naming a function of their choice) runs nothing, neither in the web
service that reads job states nor in ``pf-worker``, and reads as a failed job.
``pf-worker --burst`` exits, run after run, on an empty and on a busy queue
(with RQ 3.0 and redis-py 8.2 it used to hang in about one run of four).
"""

from __future__ import annotations

import json
import os
import pickle
import pprint
import subprocess
import time
import types
import zlib
from pathlib import Path

import pytest
import redis

from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.jobs import wait_for_job
from pipeforge.jobs.payload import TASK
from pipeforge.jobs.rq import RQJobQueue
from pipeforge.server import create_app
from tests import scale_helpers
from tests.fixtures.workers import BIN, ROOT

pytestmark = pytest.mark.slow

ADD = "tests.scale_helpers.add"


class Planted:
    """What an attacker pickles: loading it makes the folder ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def write_config(tmp_path: Path, redis_url: str, **queue) -> Path:
    entry = {"__factory__": "pipeforge.jobs.rq.RQJobQueue", "url": redis_url, "jobs": [ADD]}
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat({"job_queue": {**entry, **queue}}))
    return path


def index(client: redis.Redis, job_id: str, name: str = "pipeforge") -> None:
    """List ``job_id`` where pipeforge lists its jobs, as a job it queued would be."""
    client.zadd(f"pipeforge:jobs:{name}", {job_id: time.time()})


def plant_pickled_job(client: redis.Redis, marker: Path) -> str:
    """A job written with RQ's pickle serializer, pickles in its data and meta."""
    from rq import Queue

    queue = Queue("pipeforge", connection=client)  # RQ's default serializer: pickle
    job = queue.enqueue_call(
        TASK, args=(Planted(marker), {}), meta={"name": Planted(marker)}, description="planted"
    )
    index(client, job.id)
    return job.id


def plant_abandoned_pickled_job(client: redis.Redis, marker: Path) -> str:
    """A pickled job that says a worker took it an hour ago and went silent."""
    from datetime import datetime, timedelta, timezone

    from rq.utils import utcformat

    job_id = plant_pickled_job(client, marker)
    client.lrem("rq:queue:pipeforge", 0, job_id)
    long_ago = utcformat(datetime.now(timezone.utc) - timedelta(hours=1))
    client.hset(
        f"rq:job:{job_id}",
        mapping={"status": "started", "started_at": long_ago, "last_heartbeat": long_ago},
    )
    return job_id


def plant_json_job(client: redis.Redis, func: str, args: tuple, description: str) -> str:
    from rq import Queue
    from rq.serializers import JSONSerializer

    job = Queue("pipeforge", connection=client, serializer=JSONSerializer).enqueue_call(
        func, args=args, description=description
    )
    index(client, job.id)
    return job.id


def plant_pickled_result(redis_url: str, marker: Path) -> str:
    """A finished job of pipeforge's own form whose result is a pickle."""
    from rq.results import Result
    from rq.serializers import DefaultSerializer

    client = redis.Redis.from_url(redis_url)
    job_id = RQJobQueue(redis_url, jobs=[ADD]).enqueue(scale_helpers.add, None, a=1, b=2)
    client.lrem("rq:queue:pipeforge", 0, job_id)  # taken off the queue: only read, never run
    pickled = types.SimpleNamespace(id=job_id, connection=client, serializer=DefaultSerializer)
    Result.create(pickled, Result.Type.SUCCESSFUL, ttl=600, return_value=Planted(marker))
    client.hset(f"rq:job:{job_id}", "status", "finished")
    return job_id


def test_jobs_are_json_in_redis(redis_url):
    queue = RQJobQueue(redis_url, jobs=[ADD])
    job_id = queue.enqueue(scale_helpers.add, None, name="adding", a=1, b=2)
    stored = redis.Redis.from_url(redis_url).hgetall(f"rq:job:{job_id}")
    data = json.loads(zlib.decompress(stored[b"data"]))
    assert data == [TASK, None, ["tests.scale_helpers:add", {"a": 1, "b": 2}], {}]
    assert json.loads(stored[b"meta"]) == {"name": "adding"}


def test_a_queue_takes_only_its_job_functions_and_json_arguments(redis_url):
    queue = RQJobQueue(redis_url, jobs=[ADD])
    with pytest.raises(ConfigError, match="job_queue.jobs: .*add 'tests.scale_helpers:bug'"):
        queue.enqueue(scale_helpers.bug, None)
    with pytest.raises(TypeError, match="'a' is a bytes"):
        queue.enqueue(scale_helpers.add, None, a=b"1", b=2)
    with pytest.raises(ConfigError, match="parameter 'jobs' of RQJobQueue"):
        RQJobQueue(redis_url, jobs="tests.scale_helpers.add").allowed_jobs()
    assert redis.Redis.from_url(redis_url).llen("rq:queue:pipeforge") == 0


def test_planted_jobs_run_nothing_and_read_failed(tmp_path, redis_url, pf_worker):
    client = redis.Redis.from_url(redis_url)
    marker = tmp_path / "planted-code-ran"
    pickled = plant_pickled_job(client, marker)
    result = plant_pickled_result(redis_url, marker)
    abandoned = plant_abandoned_pickled_job(client, marker)
    direct = plant_json_job(client, "os.mkdir", (str(marker),), "direct")
    unlisted = plant_json_job(client, TASK, ("os.mkdir", {"path": str(marker)}), "unlisted")
    config = write_config(tmp_path, redis_url)

    # The web service reads the planted jobs (GET /alive, GET /jobs/<id>) and unpickles nothing.
    web = create_app(load_config([str(config)])).test_client()
    listed = web.get("/alive").get_json()["process_metadata"]["jobs"]
    assert not marker.exists()
    for job_id in (pickled, result, abandoned, direct, unlisted):
        assert listed[job_id]["status"] == "error", listed[job_id]
    assert "not JSON" in listed[pickled]["error"] and "never run" in listed[pickled]["error"]
    assert listed[result]["error"] == "the job's result in Redis is not JSON"
    assert listed[abandoned]["error"] == listed[pickled]["error"]
    assert client.hget(f"rq:job:{abandoned}", "status") == b"failed"  # its silent worker: dead
    assert "calls 'os.mkdir'" in listed[direct]["error"]
    assert "'os.mkdir' is not a job function of this config" in listed[unlisted]["error"]

    # A worker takes them, runs none, records each as failed and goes on to the next job.
    worker, name = pf_worker(config)
    queue = RQJobQueue(redis_url, jobs=[ADD])
    after = queue.enqueue(scale_helpers.add, None, a=2, b=3)
    assert wait_for_job(queue, after, timeout=60, poll=0.1)["info"]["sum"] == 5
    assert worker.poll() is None and not marker.exists()
    for job_id in (pickled, direct, unlisted):
        response = web.get(f"/jobs/{job_id}")
        assert response.status_code == 200
        record = response.get_json()
        assert (record["status"], record["worker"]) == ("error", name), record
        assert record["error"].startswith("refused: ")
    log = (tmp_path / "pf-worker-0.log").read_text()
    assert "RefusedJobError" in log and "DeserializationError" in log

    # The planted pickle was live: loading it, as RQ's default serializer would, runs its code.
    pickle.loads(zlib.decompress(client.hget(f"rq:job:{pickled}", "data")))
    assert marker.is_dir()


def run_bursts(config: Path, queues: list[str], *, parallel: int = 6, deadline: float = 40.0):
    """Run ``pf-worker --burst <queue>`` once per queue, ``parallel`` at a time, each with a
    deadline; return ``(queue, exit status or None if it hung, output)`` for each."""
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    waiting, running, done = list(queues), [], []
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                name = waiting.pop(0)
                out = config.parent / f"{name}.log"
                with open(out, "wb") as handle:
                    proc = subprocess.Popen(
                        [str(BIN / "pf-worker"), "--burst", name],
                        env=env,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                    )
                running.append((name, proc, out, time.monotonic() + deadline))
            for item in list(running):
                name, proc, out, until = item
                if proc.poll() is None and time.monotonic() < until:
                    continue
                status = proc.poll()
                if status is None:  # hung: stop it, and say so
                    proc.kill()
                    proc.wait(10)
                running.remove(item)
                done.append((name, status, out.read_text(errors="replace")))
            time.sleep(0.05)
    finally:
        for _, proc, _, _ in running:  # only after a failure here: stop what still runs
            proc.kill()
            proc.wait(10)
    return done


def test_a_burst_worker_always_exits(tmp_path, redis_url):
    config = write_config(tmp_path, redis_url)
    runs = 50
    busy = {f"busy-{n}": RQJobQueue(redis_url, f"busy-{n}", jobs=[ADD]) for n in range(runs)}
    jobs = {
        name: [queue.enqueue(scale_helpers.add, None, a=n, b=1) for n in range(3)]
        for name, queue in busy.items()
    }
    results = run_bursts(config, [f"empty-{n}" for n in range(runs)] + list(busy))
    assert len(results) == 2 * runs
    stuck = [(name, status, out[-600:]) for name, status, out in results if status != 0]
    assert stuck == []
    for name, queue in busy.items():
        assert [queue.get(job)["info"]["sum"] for job in jobs[name]] == [1, 2, 3]
