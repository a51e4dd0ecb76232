"""Online learning speed: pipeforge's /api/predict and /api/learn against their ceilings.

One River model, ``StandardScaler | LinearRegression``, measured side by side
in one run:

(a) in-process: the model's own ``predict_one`` / ``learn_one``;
(b) a bare Flask app holding the model (and the features kept by id) in
    memory — the ceiling of any server;
(c) pipeforge (``pipeforge.wsgi:app``) on each store: SQLite (the default),
    Redis and PostgreSQL (servers started by this script on 127.0.0.1 unless
    ``--redis-url`` / ``--postgres-url`` are given).

Each server is ``gunicorn -w 1 -k gthread`` (keep-alive); one
``requests.Session`` sends N predicts with an ``id``, then N learns of those
ids (chantilly's progressive validation). For each call kind the script
prints the median latency and the worker's CPU time per call (user + system,
from /proc), and the ratios to (b). Targets: pipeforge on SQLite at most
0.5 ms of server CPU per call and within 1.5x of (b).

    .venv/bin/python bench/online.py [-n 2000] [--rounds 3] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import os
import pprint
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")

MODEL = {
    "__factory__": "pipeforge.online.pipeline",
    "steps": [
        {"__factory__": "river.preprocessing.StandardScaler"},
        {"__factory__": "river.linear_model.LinearRegression"},
    ],
}

BARE_APP = """
import itertools
from flask import Flask, request
from river import compose, linear_model, preprocessing

app = Flask(__name__)
MODEL = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LinearRegression())
KEPT = {}

@app.post("/api/predict")
def predict():
    body = request.get_json()
    prediction = MODEL.predict_one(dict(body["features"]))
    if "id" in body:
        KEPT[str(body["id"])] = (body["features"], prediction)
        return {"model": "m", "prediction": prediction}, 201
    return {"model": "m", "prediction": prediction}

@app.post("/api/learn")
def learn():
    body = request.get_json()
    features, _prediction = KEPT.pop(str(body["id"]))
    MODEL.learn_one(dict(features), body["ground_truth"])
    return {"model": "m"}, 201
"""


# gunicorn's own cost per call: a WSGI app that reads the body and answers a constant.
RAW_APP = """
BODY = b'{"model": "m", "prediction": 0.0}'


def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response(
        "201 CREATED",
        [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(rng: random.Random) -> tuple[dict, float]:
    x = {f"x{i}": rng.gauss(0, 1) for i in range(6)}
    return x, 3.0 * x["x0"] - 2.0 * x["x1"] + rng.gauss(0, 0.1)


def in_process(n: int) -> dict:
    from river import linear_model, preprocessing

    from pipeforge.online import pipeline

    model = pipeline([preprocessing.StandardScaler(), linear_model.LinearRegression()])
    rng = random.Random(1)
    rows = [sample(rng) for _ in range(n)]
    times = {"predict": [], "learn": []}
    for x, y in rows:
        t = time.perf_counter_ns()
        model.predict_one(x)
        times["predict"].append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        model.learn_one(x, y)
        times["learn"].append(time.perf_counter_ns() - t)
    return {
        kind: {"median_ms": statistics.median(v) / 1e6, "cpu_ms": statistics.mean(v) / 1e6}
        for kind, v in times.items()
    }


class Server:
    """``gunicorn -w 1 -k gthread`` serving ``app`` (a module:attr) with ``env``."""

    def __init__(self, app: str, env: dict, cwd: Path, log: Path, threads: int = 1):
        command = [
            sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", str(threads),
            "--bind", "127.0.0.1:0", "--no-control-socket", "--keep-alive", "30", app,
        ]  # fmt: skip
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline and self.url is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()}")
            match = _LISTENING.search(log.read_text(errors="replace"))
            self.url = match.group(1) if match else None
            time.sleep(0.1)
        if self.url is None:
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}")

    def worker(self) -> psutil.Process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(self.proc.pid).children()
            if children:
                return children[0]
            time.sleep(0.1)
        raise RuntimeError("no gunicorn worker")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Client:
    """One keep-alive session to one server, and what it measured."""

    def __init__(self, server: Server):
        self.server = server
        self.session = requests.Session()
        self.worker = server.worker()
        self.cpu = {"predict": 0.0, "learn": 0.0}
        self.latencies: dict[str, list[int]] = {"predict": [], "learn": []}
        self.calls = {"predict": 0, "learn": 0}

    def send(self, kind: str, bodies: list[dict]) -> None:
        url = f"{self.server.url}/api/{kind}"
        cpu = _cpu(self.worker)
        for body in bodies:
            t = time.perf_counter_ns()
            answer = self.session.post(url, json=body)
            self.latencies[kind].append(time.perf_counter_ns() - t)
            if answer.status_code != 201:
                raise RuntimeError(f"{kind} answered {answer.status_code}: {answer.text}")
        self.cpu[kind] += _cpu(self.worker) - cpu
        self.calls[kind] += len(bodies)

    def result(self) -> dict:
        return {
            kind: {
                "median_ms": statistics.median(self.latencies[kind]) / 1e6,
                "cpu_ms": self.cpu[kind] * 1000 / self.calls[kind],
            }
            for kind in self.cpu
        }


def measure(clients: dict[str, Client], n: int, seed: int, batch: int = 100) -> dict:
    """N predicts with ids and N learns of them per server, in batches taking turns.

    The servers take turns batch by batch, so a busy moment of this (shared,
    noisy) machine weighs on all of them alike.
    """
    rng = random.Random(seed)
    rows = [sample(rng) for _ in range(n)]
    for start in range(0, n, batch):
        chunk = list(enumerate(rows[start : start + batch], start))
        for client in clients.values():
            client.send("predict", [{"features": x, "id": f"{seed}-{i}"} for i, (x, _) in chunk])
        for client in clients.values():
            client.send("learn", [{"id": f"{seed}-{i}", "ground_truth": y} for i, (_, y) in chunk])
    return {label: client.result() for label, client in clients.items()}


def start_redis(workdir: Path) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    return f"redis://127.0.0.1:{port}/0", proc


def start_postgres(workdir: Path) -> tuple[str, callable]:
    import glob

    folder = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    data = workdir / "pg"
    as_postgres = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    if as_postgres:
        shutil.chown(workdir, user="postgres", group="postgres")
    port = _free_port()
    subprocess.run(
        [
            *prefix,
            f"{folder}/initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [
            *prefix,
            f"{folder}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(workdir / "pg.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop():
        subprocess.run(
            [*prefix, f"{folder}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


def pipeforge_config(folder: Path, store: dict | None) -> Path:
    config = {"online_models": {"m": {"model": MODEL, "flavor": "regression"}}}
    if store is not None:
        config["online"] = {"store": store}
    path = folder / "config.py"
    path.write_text(pprint.pformat(config))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="calls of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url")
    parser.add_argument("--postgres-url")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pf-bench-online-"))
    cleanups = []
    servers: dict[str, Server] = {}
    try:
        (workdir / "raw_app.py").write_text(RAW_APP)
        servers["raw WSGI (gunicorn alone)"] = Server(
            "raw_app:app", {}, workdir, workdir / "raw.log", args.threads
        )
        (workdir / "bare_app.py").write_text(BARE_APP)
        servers["bare Flask (ceiling)"] = Server(
            "bare_app:app", {}, workdir, workdir / "bare.log", args.threads
        )
        stores = {"pipeforge, SQLite": None}
        if not args.skip_redis:
            url = args.redis_url
            if url is None:
                url, proc = start_redis(workdir)
                cleanups.append(proc.terminate)
            stores["pipeforge, Redis"] = {"__factory__": "pipeforge.online.RedisStore", "url": url}
        if not args.skip_postgres:
            url = args.postgres_url
            if url is None:
                url, stop = start_postgres(workdir)
                cleanups.append(stop)
            stores["pipeforge, PostgreSQL"] = {
                "__factory__": "pipeforge.online.SQLStore",
                "url": url,
            }
        for label, store in stores.items():
            folder = workdir / re.sub(r"\W+", "_", label)
            folder.mkdir()
            config = pipeforge_config(folder, store)
            env = {"PIPEFORGE_CONFIG": str(config)}
            servers[label] = Server(
                "pipeforge.wsgi:app", env, ROOT, folder / "gunicorn.log", args.threads
            )

        results: dict[str, list[dict]] = {label: [] for label in servers}
        results["in-process"] = []
        for round_ in range(args.rounds):
            results["in-process"].append(in_process(args.n))
            clients = {label: Client(server) for label, server in servers.items()}
            measure(clients, 100, seed=-1 - round_)  # warm up: models loaded, connections open
            clients = {label: Client(server) for label, server in servers.items()}
            for label, result in measure(clients, args.n, seed=round_).items():
                results[label].append(result)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

        def best(label, kind, key):
            return statistics.median(r[kind][key] for r in results[label])

        ceiling = "bare Flask (ceiling)"
        print(
            f"\n{args.n} calls of each kind per round, median of {args.rounds} rounds; gunicorn -w 1 -k gthread --threads {args.threads}\n"
        )
        print(
            f"{'':26} {'predict: latency':>17} {'CPU':>8} {'xFlask':>7}   {'learn: latency':>15} {'CPU':>8} {'xFlask':>7}"
        )
        for label in ["in-process", *servers]:
            cells = []
            for kind in ("predict", "learn"):
                latency, cpu = best(label, kind, "median_ms"), best(label, kind, "cpu_ms")
                if label == "in-process":
                    cells.append(f"{latency:14.3f} ms {cpu:6.3f} ms {'':>7}")
                    continue
                ratio = cpu / best(ceiling, kind, "cpu_ms")
                cells.append(f"{latency:14.3f} ms {cpu:6.3f} ms {ratio:6.2f}x")
            print(f"{label:26} {cells[0]}   {cells[1]}")
        print(
            "\nCPU is the server worker's user+system time per call (in-process: the call itself)."
        )
        print("Targets: pipeforge on SQLite <= 0.5 ms CPU per call and <= 1.5x the bare Flask app.")
        floor = "raw WSGI (gunicorn alone)"
        for kind in ("predict", "learn"):
            alone = best(floor, kind, "cpu_ms")
            print(
                f"{kind}: gunicorn alone takes {alone:.3f} ms of CPU per call; above it, bare Flask "
                f"adds {best(ceiling, kind, 'cpu_ms') - alone:.3f} ms and pipeforge on SQLite "
                f"{best('pipeforge, SQLite', kind, 'cpu_ms') - alone:.3f} ms"
            )
    finally:
        for server in servers.values():
            server.stop()
        for cleanup in cleanups:
            cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
