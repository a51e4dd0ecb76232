"""Serving speed: pipeforge's /predict against bare Flask apps, under the same gunicorn.

Servers run side by side on 127.0.0.1, each under the gunicorn setting named
in its row (sync ``-w 2``, or ``-w 2 --threads 8`` with gthread workers):

- ``constant``: a bare Flask app answering a constant JSON (the ceiling);
- ``flask+model``: a bare Flask app calling the same model by hand (also
  under threads, so batching is compared with the bare app's best);
- ``pf-db`` / ``pf-file``: pipeforge serving the iris model from the
  ``Database`` / ``File`` persister (model cache refreshed every second);
- ``pf-db-nometrics``: ``pf-db`` with ``'metrics': False`` (what /metrics costs);
- ``pf-db-batch`` / ``pf-file-batch``: threaded workers with batching on;
- ``pf-db-log``: ``pf-db`` with the prediction log on (into the store's SQLite
  database): what the log costs;
- ``pf-db-shadow``: ``pf-db-log`` shadowing every request to another alias:
  its p50 against ``pf-db-log``'s says what the shadow adds to the caller's wait.

wrk (installed with apt-get if missing) loads each with 16 connections in
interleaved rounds: GET /predict with one sample and POST /predict with 100
samples. The script prints requests/s and p99 latency (medians over rounds),
the workers' CPU time per request (what a request costs, whatever the noise
of a shared machine), the ratios the issue sets targets for, and the workers'
resident memory.

    .venv/bin/python bench/serve.py [--rounds 3] [--duration 4] [--only pf-db,constant]

``--baseline DIR`` runs each pipeforge server a second time from another
checkout (``git worktree add DIR <commit>``), in the same interleaved rounds,
and prints this checkout's figures as ratios of the baseline's: how a change
moved the serving speed, measured on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SAMPLE = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
QUERY = "sepal%20length=5.1&sepal%20width=3.5&petal%20length=1.4&petal%20width=0.2"
CONNECTIONS = 16
SYNC = ["-w", "2"]
THREADED = ["-w", "2", "--worker-class", "gthread", "--threads", "8"]
BATCHING = {"max_batch_size": 64, "max_wait_ms": 2}

CONSTANT_APP = """
from flask import Flask, request
app = Flask(__name__)
META = {"service_name": "iris", "service_version": "0.1", "status": "OK", "error_code": 0}

@app.route("/predict", methods=["GET", "POST"])
def predict():
    if request.method == "POST":
        return {"result": ["Iris-setosa"] * len(request.get_json()), "metadata": META}
    return {"result": "Iris-setosa", "metadata": META}
"""

MODEL_APP = """
import joblib
import numpy as np
from flask import Flask, request
app = Flask(__name__)
MODEL = joblib.load({model_path!r})
NAMES = {names!r}
META = {{"service_name": "iris", "service_version": "0.1", "status": "OK", "error_code": 0}}

@app.route("/predict", methods=["GET", "POST"])
def predict():
    if request.method == "POST":
        X = np.array([[float(s[n]) for n in NAMES] for s in request.get_json()])
        return {{"result": MODEL.predict(X).tolist(), "metadata": META}}
    X = np.array([[float(request.args[n]) for n in NAMES]])
    return {{"result": MODEL.predict(X).tolist()[0], "metadata": META}}
"""


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("installing wrk with apt-get ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update"], check=True, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        wrk = shutil.which("wrk")
    return wrk


def prepare(folder: Path) -> dict[str, Path]:
    """Fit the iris model, store it for pipeforge and as a joblib file; write the configs."""
    import joblib

    from pipeforge import training
    from pipeforge.config import load_config
    from tests.fixtures.gunicorn import iris_config

    def store(impl: dict) -> dict:
        return {
            "__factory__": "pipeforge.persistence.CachedUpdatePersister",
            "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
            "impl": impl,
        }

    def logged(**release) -> dict:
        mapping = [[name, "float"] for name in FEATURES]
        return {
            "__factory__": "pipeforge.server.PredictService",
            "mapping": mapping,
            "prediction_log": True,
            **release,
        }

    database = {"__factory__": "pipeforge.persistence.Database", "url": f"sqlite:///{folder}/m.db"}
    files = {"__factory__": "pipeforge.persistence.File", "path": f"{folder}/model-{{version}}"}
    configs = {
        "pf-db": iris_config(folder, name="db.py", model_persister=store(database)),
        "pf-file": iris_config(folder, name="file.py", model_persister=store(files)),
        "pf-db-nometrics": iris_config(
            folder, name="db-nometrics.py", model_persister=store(database), metrics=False
        ),
        "pf-db-batch": iris_config(
            folder, name="db-batch.py", model_persister=store(database), batching=BATCHING
        ),
        "pf-file-batch": iris_config(
            folder, name="file-batch.py", model_persister=store(files), batching=BATCHING
        ),
        "pf-db-log": iris_config(
            folder, name="db-log.py", model_persister=store(database), predict_service=logged()
        ),
        "pf-db-shadow": iris_config(
            folder,
            name="db-shadow.py",
            model_persister=store(database),
            predict_service=logged(shadow={"alias": "challenger", "fraction": 1.0}),
        ),
    }
    db_config = load_config([str(configs["pf-db"])])
    result = training.fit(
        db_config["dataset_loader_train"], db_config["model"], db_config["model_persister"]
    )
    joblib.dump(result.model, folder / "model.joblib")
    from pipeforge.release.aliases import set_alias

    set_alias(db_config["model_persister"], "challenger", result.version)  # the shadow's
    file_persister = load_config([str(configs["pf-file"])])["model_persister"]
    file_persister.activate(file_persister.write(result.model))
    (folder / "constant_app.py").write_text(CONSTANT_APP)
    (folder / "model_app.py").write_text(
        MODEL_APP.format(model_path=str(folder / "model.joblib"), names=FEATURES)
    )
    body = json.dumps([SAMPLE] * 100)
    (folder / "post.lua").write_text(
        'wrk.method = "POST"\nwrk.body = ' + json.dumps(body) + "\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return configs


def servers(configs: dict[str, Path]) -> dict[str, tuple[str, list[str], dict]]:
    """name -> (WSGI app, gunicorn arguments, environment)."""

    def pf(name: str, args: list[str]):
        return "pipeforge.wsgi:app", args, {"PIPEFORGE_CONFIG": str(configs[name])}

    return {
        "constant": ("constant_app:app", SYNC, {}),
        "flask+model": ("model_app:app", SYNC, {}),
        "flask+model-threads": ("model_app:app", THREADED, {}),
        "pf-db": pf("pf-db", SYNC),
        "pf-file": pf("pf-file", SYNC),
        "pf-db-nometrics": pf("pf-db-nometrics", SYNC),
        "pf-db-batch": pf("pf-db-batch", THREADED),
        "pf-file-batch": pf("pf-file-batch", THREADED),
        "pf-db-log": pf("pf-db-log", SYNC),
        "pf-db-shadow": pf("pf-db-shadow", SYNC),
    }


def baseline_twins(table: dict, baseline: Path) -> dict[str, tuple[str, list[str], dict]]:
    """``<name>@base``: each pf-* server again, importing pipeforge from ``baseline``."""
    if not (baseline / "pipeforge" / "__init__.py").exists():
        raise SystemExit(f"--baseline {baseline}: no pipeforge checkout there")
    return {
        f"{name}@base": (app, gargs, {**env, "PYTHONPATH": str(baseline)})
        for name, (app, gargs, env) in table.items()
        if name.startswith("pf-")
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(name: str, app: str, args: list[str], folder: Path, env: dict):
    """Start one server on a free port; ``--reuse-port`` gives each worker its own socket.

    With one shared socket, the connections of a keep-alive client like wrk
    stay with whichever worker accepted them, often 14 or all 16 with one of
    two threaded workers (half the throughput, either way between rounds);
    per-worker sockets let the kernel spread them.
    """
    log_path = folder / f"{name}.log"
    log = open(log_path, "wb")
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "gunicorn", *args, "--reuse-port", "-b", url[7:]]
    command += ["--no-control-socket", "--chdir", str(folder), app]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')}")
        try:
            urllib.request.urlopen(f"{url}/predict?{QUERY}", timeout=5).close()
            return proc, url
        except OSError:  # not up yet (refused, reset or timed out)
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer")


def worker_cpu(proc) -> float:
    total = 0.0
    for worker in psutil.Process(proc.pid).children():
        try:
            times = worker.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def run_wrk(
    wrk: str, url: str, duration: int, lua: Path | None = None
) -> tuple[float, float, int, float]:
    """(requests/s, p99 latency in ms, requests, p50 latency in ms) of one wrk run."""
    command = [wrk, "-t", "2", "-c", str(CONNECTIONS), "-d", f"{duration}s", "--latency", url]
    if lua is not None:
        command[1:1] = ["-s", str(lua)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while loading {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for share in ("50", "99"):
        value, unit = re.search(share + r"%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[share] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    count = int(re.search(r"(\d+) requests in", out).group(1))
    return rate, latency["99"], count, latency["50"]


def model_costs(folder: Path) -> dict[str, float]:
    """CPU ms of the model call alone, in this process: one row, and 100 rows from JSON.

    Every server here pays at least this on top of what the constant app
    does, so ``constant CPU / (constant CPU + call)`` bounds the ratio any of
    them can reach.
    """
    import joblib
    import numpy as np

    model = joblib.load(folder / "model.joblib")
    samples = json.loads(json.dumps([SAMPLE] * 100))

    def one():
        model.predict(np.array([[SAMPLE[n] for n in FEATURES]]))

    def hundred():
        model.predict(np.array([[s[n] for n in FEATURES] for s in samples], dtype=float))

    costs = {}
    for name, call in (("GET", one), ("POST", hundred)):
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(300):
                call()
            best = min(best, (time.process_time() - started) / 300 * 1000)
        costs[name] = best
    return costs


def worker_rss(proc) -> float:
    workers = psutil.Process(proc.pid).children()
    return statistics.mean(w.memory_info().rss for w in workers) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--only", help="comma-separated server names (default: all)")
    parser.add_argument(
        "--baseline", type=Path, help="another pipeforge checkout to run each pf-* server from too"
    )
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="pf-bench-serve-") as tmp:
        folder = Path(tmp)
        table = servers(prepare(folder))
        calls = model_costs(folder)
        if args.only:
            table = {name: table[name] for name in args.only.split(",")}
        if args.baseline is not None:
            table.update(baseline_twins(table, args.baseline.resolve()))
        running = {}
        try:
            for name, (app, gargs, env) in table.items():
                running[name] = start(name, app, gargs, folder, env)
            figures = {(n, k): [] for n in table for k in ("GET", "POST")}
            for round_ in range(args.rounds):
                for name, (proc, url) in running.items():
                    for kind, target, lua in (
                        ("GET", f"{url}/predict?{QUERY}", None),
                        ("POST", f"{url}/predict", folder / "post.lua"),
                    ):
                        before = worker_cpu(proc)
                        rate, p99, count, p50 = run_wrk(wrk, target, args.duration, lua)
                        cpu_ms = (worker_cpu(proc) - before) / max(count, 1) * 1000
                        figures[name, kind].append((rate, p99, cpu_ms, p50))
                print(f"round {round_ + 1}/{args.rounds} done", flush=True)
            rss = {name: worker_rss(proc) for name, (proc, _) in running.items()}
        finally:
            for proc, _ in running.values():
                proc.terminate()
                proc.wait(15)
    report(figures, rss, table, args, calls)
    return 0


def report(figures, rss, table, args, calls) -> None:
    def med(name, kind, index):
        return statistics.median(f[index] for f in figures[name, kind])

    print(
        f"\nwrk -t2 -c{CONNECTIONS}, {args.rounds} interleaved rounds x {args.duration} s; "
        "medians; cpu = workers' CPU ms per request"
    )
    print(
        f"{'server':<21}{'setting':<12}{'GET req/s':>10}{'p99 ms':>8}{'cpu':>7}"
        f"{'POST req/s':>12}{'p99 ms':>8}{'cpu':>7}{'RSS MB':>8}"
    )
    for name, (_, gargs, _) in table.items():
        setting = "threads 8" if "--threads" in gargs else "sync"
        print(
            f"{name:<21}{setting:<12}{med(name, 'GET', 0):>10.0f}{med(name, 'GET', 1):>8.1f}"
            f"{med(name, 'GET', 2):>7.2f}{med(name, 'POST', 0):>12.0f}{med(name, 'POST', 1):>8.1f}"
            f"{med(name, 'POST', 2):>7.2f}{rss[name]:>8.1f}"
        )
    names = set(table)

    def ratio(a, b, kind, index=0):
        """Median over rounds of the per-round ratio (the servers of a round run minutes apart)."""
        if {a, b} <= names:
            return statistics.median(spread(a, b, kind, index))
        return float("nan")

    def spread(a, b, kind, index=0):
        return [
            x[index] / y[index] for x, y in zip(figures[a, kind], figures[b, kind], strict=True)
        ]

    def span(a, b, kind, index=0):
        if not {a, b} <= names:
            return ""
        rounds = spread(a, b, kind, index)
        return f" [rounds {min(rounds):.2f}-{max(rounds):.2f}]"

    bare = max(
        (n for n in ("flask+model", "flask+model-threads") if n in names),
        key=lambda n: med(n, "GET", 0),
        default=None,
    )
    print("\nratios (target):")
    for batch in ("pf-db-batch", "pf-file-batch"):
        for other in ("flask+model", "flask+model-threads"):
            best = " (the best bare app here)" if other == bare else ""
            print(
                f"  {batch} GET / {other} GET      {ratio(batch, other, 'GET'):.2f}"
                f"{span(batch, other, 'GET')} (>= 1.3); p99 {ratio(batch, other, 'GET', 1):.2f}x "
                f"its p99 (<= 2){best}"
            )
    for plain in ("pf-db", "pf-file"):
        print(
            f"  {plain} GET / flask+model GET (sync)        "
            f"{ratio(plain, 'flask+model', 'GET'):.2f}{span(plain, 'flask+model', 'GET')} (>= 1.0)"
        )
    for plain in ("pf-db", "pf-file"):
        print(
            f"  {plain} POST 100 / constant POST 100          "
            f"{ratio(plain, 'constant', 'POST'):.2f}{span(plain, 'constant', 'POST')} (>= 0.75; "
            f"{ratio(plain, 'flask+model', 'POST'):.2f} of the bare Flask + model app)"
        )
    if "constant" in names:
        for kind in ("GET", "POST"):
            constant = med("constant", kind, 2)
            print(
                f"  {kind}: the model call alone costs {calls[kind]:.3f} ms = "
                f"{calls[kind] / constant:.2f}x a constant request's CPU ({constant:.3f} ms); "
                f"no server calling it can pass {constant / (constant + calls[kind]):.2f}x the "
                "constant app"
            )
    cost = 1 - ratio("pf-db", "pf-db-nometrics", "GET")
    cpu_cost = ratio("pf-db", "pf-db-nometrics", "GET", 2) - 1
    print(
        f"  /metrics on costs (GET req/s)              {cost:+.1%} (<= 5%; "
        f"{cpu_cost:+.1%} in CPU per request)"
    )
    for kind in ("GET", "POST"):
        log_cost = 1 - ratio("pf-db-log", "pf-db", kind)
        print(
            f"  prediction log on costs ({kind} req/s)        {log_cost:+.1%}"
            f"{span('pf-db-log', 'pf-db', kind)} (<= 10%; "
            f"{ratio('pf-db-log', 'pf-db', kind, 2) - 1:+.1%} in CPU per request)"
        )
    for kind in ("GET", "POST"):
        print(
            f"  shadow on: p50 {kind} / without             "
            f"{ratio('pf-db-shadow', 'pf-db-log', kind, 3):.2f}"
            f"{span('pf-db-shadow', 'pf-db-log', kind, 3)} (1.00: the caller does not wait; "
            f"req/s {ratio('pf-db-shadow', 'pf-db-log', kind):.2f})"
        )
    for name in sorted(n for n in names if f"{n}@base" in names):
        base = f"{name}@base"
        print(
            f"  {name} / {base}: GET req/s {ratio(name, base, 'GET'):.2f}"
            f"{span(name, base, 'GET')}, POST req/s {ratio(name, base, 'POST'):.2f}"
            f"{span(name, base, 'POST')}; CPU per request GET "
            f"{ratio(name, base, 'GET', 2):.2f}, POST {ratio(name, base, 'POST', 2):.2f}"
        )
    print(
        f"  pf-db / pf-file CPU per POST request       "
        f"{ratio('pf-db', 'pf-file', 'POST', 2):.2f} (1.00: the persister is not on the "
        "serving path)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
