"""Scale-out costs: RQ jobs against the in-process thread runner, two gunicorn masters on PostgreSQL.

Three figures, each baseline and pipeforge in the same run:

(1) submit-to-start latency of a trivial job: ``JobRunner`` (a thread of this
    process) against ``RQJobQueue`` with one ``pf-worker`` on a local Redis
    (median of ``--jobs`` jobs, one after another);
(2) what a Redis-backed job adds to a 1-second fit: submit-to-finished time of
    ``fit_job`` with a model whose fit sleeps 1 s, threads against RQ;
(3) requests/s (wrk, GET /predict) of two ``gunicorn -w 2`` masters on one
    PostgreSQL model store, loaded together, against one master alone. On a
    2-core machine expect about 1x: the figure shows the store is no bottleneck.

    .venv/bin/python bench/scale.py [--jobs 30] [--fits 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pprint
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve import QUERY, ensure_wrk, run_wrk  # noqa: E402  (bench/serve.py)

BIN = Path(sys.executable).parent

TIMING_JOBS = """
import time
from sklearn.linear_model import LogisticRegression


def stamp(config):
    return time.time()


class OneSecondFit(LogisticRegression):
    def fit(self, X, y):
        time.sleep(1.0)
        return super().fit(X, y)
"""


@contextlib.contextmanager
def redis_server(folder: Path):
    from tests.fixtures.postgres import _free_port

    port = _free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port)]
        + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def postgres_server():
    from tests.fixtures import postgres

    bindir = postgres._bin_dir()
    as_postgres = os.geteuid() == 0  # initdb refuses root: run it as postgres
    folder = Path(tempfile.mkdtemp(prefix="pf-bench-pg-"))
    if as_postgres:
        shutil.chown(folder, user="postgres", group="postgres")
    data, port = folder / "pg", postgres._free_port()
    postgres._run(
        [f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust"], as_postgres
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [f"{bindir}/pg_ctl", "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-o", options]
    postgres._run([*start, "start"], as_postgres)
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        with postgres._admin_connection(url) as conn:
            conn.execute("CREATE DATABASE bench")
        yield url.rsplit("/", 1)[0] + "/bench"
    finally:
        postgres._run(
            [f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], as_postgres
        )
        shutil.rmtree(folder, ignore_errors=True)


def write_config(folder: Path, name: str, **entries) -> Path:
    from tests.fixtures.gunicorn import iris_config_dict

    path = folder / name
    path.write_text(pprint.pformat(iris_config_dict(folder, **entries), sort_dicts=False))
    return path


def start_worker(config: Path, folder: Path) -> subprocess.Popen:
    from tests.fixtures.workers import wait_for_text

    log = folder / f"{config.stem}-worker.log"
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "pf-worker"), "--heartbeat=1"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_text(proc, log, "Listening on")
    return proc


def started_latency(queue, config, jobs: int) -> float:
    """Median seconds from submitting ``stamp`` to its start (the time it returns)."""
    from timing_jobs import stamp

    from pipeforge.jobs import wait_for_job

    delays = []
    for _ in range(jobs):
        submitted = time.time()
        record = wait_for_job(queue, queue.enqueue(stamp, config), poll=0.002)
        delays.append(record["info"] - submitted)
    return statistics.median(delays)


def fit_seconds(queue, config, fits: int) -> float:
    """Median seconds from submitting ``fit_job`` (a 1-second fit) to seeing it finished."""
    from pipeforge.jobs import fit_job, wait_for_job

    times = []
    for _ in range(fits):
        submitted = time.monotonic()
        record = wait_for_job(queue, queue.enqueue(fit_job, config, name="fit"), poll=0.005)
        assert record["status"] == "finished", record
        times.append(time.monotonic() - submitted)
    return statistics.median(times)


def jobs_figures(folder: Path, args) -> None:
    from pipeforge.config import load_config
    from pipeforge.jobs import JobRunner
    from pipeforge.process_store import ProcessStore

    (folder / "timing_jobs.py").write_text(TIMING_JOBS)
    sys.path.insert(0, str(folder))
    with redis_server(folder) as redis_url:
        queue_entry = {"__factory__": "pipeforge.jobs.rq.RQJobQueue", "url": redis_url}
        model = {"__factory__": "timing_jobs.OneSecondFit", "max_iter": 1000}
        config_path = write_config(folder, "jobs.py", model=model, job_queue=queue_entry)
        config = load_config([str(config_path)])
        worker = start_worker(config_path, folder)
        threads = JobRunner(ProcessStore())
        try:
            rq = config["job_queue"]
            started_latency(rq, None, 2)  # warm up both
            started_latency(threads, config, 2)
            thread_start = started_latency(threads, config, args.jobs)
            rq_start = started_latency(rq, None, args.jobs)
            thread_fit = fit_seconds(threads, config, args.fits)
            rq_fit = fit_seconds(rq, None, args.fits)
        finally:
            threads.shutdown()
            worker.terminate()
            worker.wait(30)
    print(f"\n(1) submit-to-start latency, median of {args.jobs} jobs")
    print(f"    threads {thread_start * 1000:8.1f} ms")
    print(f"    RQ      {rq_start * 1000:8.1f} ms   ({rq_start - thread_start:+.3f} s)")
    print(f"\n(2) submit-to-finished of a 1-second fit (fit_job), median of {args.fits}")
    print(f"    threads {thread_fit:8.2f} s")
    print(
        f"    RQ      {rq_fit:8.2f} s   overhead {rq_fit - thread_fit:+.2f} s, "
        f"ratio {rq_fit / thread_fit:.2f}x"
    )


def start_master(config: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    from tests.fixtures.gunicorn import _wait_for_url

    log = folder / f"gunicorn-{len(list(folder.glob('gunicorn-*.log')))}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0"]
            + ["--no-control-socket", "pipeforge.wsgi:app"],
            cwd=ROOT,
            env={**os.environ, "PIPEFORGE_CONFIG": str(config)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, _wait_for_url(proc, log, 60)


def masters_figures(folder: Path, args) -> None:
    from pipeforge import training
    from pipeforge.config import load_config

    wrk = ensure_wrk()
    with postgres_server() as database_url:
        config_path = write_config(folder, "serve.py")
        text = config_path.read_text().replace(f"sqlite:///{folder}/models.db", database_url)
        config_path.write_text(text)
        config = load_config([str(config_path)])
        training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
        masters = [start_master(config_path, folder) for _ in range(2)]
        url = "/predict?" + QUERY
        one, two = [], []
        try:
            for _ in range(args.rounds):
                one.append(run_wrk(wrk, masters[0][1] + url, args.duration))
                with subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--wrk-only",
                        masters[1][1] + url,
                        str(args.duration),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                ) as other:
                    first = run_wrk(wrk, masters[0][1] + url, args.duration)
                    second = float(other.communicate()[0])
                two.append(first + second)
        finally:
            for proc, _ in masters:
                proc.terminate()
                proc.wait(15)
    single, double = statistics.median(one), statistics.median(two)
    print("\n(3) GET /predict req/s, gunicorn -w 2 per master, one PostgreSQL, wrk -c4 per master")
    print(f"    one master   {single:8.0f}")
    print(f"    two masters  {double:8.0f}   ratio {double / single:.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--fits", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--wrk-only", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wrk_only:  # the second master's load, run alongside the first
        print(run_wrk(ensure_wrk(), args.wrk_only[0], int(args.wrk_only[1])))
        return 0
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="pf-bench-scale-") as tmp:
        folder = Path(tmp)
        jobs_figures(folder, args)
        masters_figures(folder, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
