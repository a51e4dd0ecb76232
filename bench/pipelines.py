"""Latency of a versioned pipeline against /predict serving the same model.

One ``gunicorn -w 2`` server on 127.0.0.1 serves both endpoints from one
config (so the settings are the same by construction):

(a) ``POST /predict`` with one sample: a scikit-learn ``Pipeline(PCA(2),
    LogisticRegression)`` fitted by pipeforge's ``training.fit``;
(b) ``POST /pipelines/predict_iris/main`` with one sample: the iris example's
    ``predict_iris`` (PCA ``predict`` -> classifier ``predict``), trained by
    ``pf-pipeline run train_iris --save``.

A bounded Python load generator (``--threads`` threads, each with its own
keep-alive-free HTTP connection per request, ``--requests`` requests per
round) loads (a) and (b) in interleaved rounds and prints the median and
p90 latency of each and the ratio b/a. Target: median ratio <= 1.2.

    .venv/bin/python bench/pipelines.py [--rounds 5] [--requests 400] [--threads 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "examples" / "iris"
FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SAMPLE = [5.1, 3.5, 1.4, 0.2]

CONFIG = """
service_metadata: {{service_name: iris, service_version: "0.1"}}
dataset_loader_train:
  __factory__: pipeforge.dataset.CSV
  path: {data}
  header: null
  names: [sepal length, sepal width, petal length, petal width, species]
  target_column: species
model:
  __factory__: sklearn.pipeline.Pipeline
  steps:
    - [pca, {{__factory__: sklearn.decomposition.PCA, n_components: 2}}]
    - [classifier, {{__factory__: sklearn.linear_model.LogisticRegression, C: 1.0, max_iter: 1000}}]
model_persister:
  __factory__: pipeforge.persistence.CachedUpdatePersister
  update_cache_rrule: {{freq: HOURLY}}
  impl: {{__factory__: pipeforge.persistence.Database, url: "sqlite:///{folder}/models.db"}}
predict_service:
  __factory__: pipeforge.server.PredictService
  mapping:
    - [sepal length, float]
    - [sepal width, float]
    - [petal length, float]
    - [petal width, float]
"""


def prepare(folder: Path) -> dict:
    """Write the config, fit the /predict model and train the pipelines; return the env."""
    # Relative paths resolve against the first config file's folder: keep the data there.
    shutil.copy(IRIS / "iris.data", folder / "iris.data")
    (folder / "serve.yaml").write_text(CONFIG.format(data=folder / "iris.data", folder=folder))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PIPEFORGE_CONFIG": f"{folder / 'serve.yaml'},{IRIS / 'pipelines.yaml'}",
        "PIPEFORGE_OP_STORE": f"sqlite:///{folder}/ops.db",
    }
    fit = (
        "from pipeforge.config import load_config\n"
        "from pipeforge import training\n"
        "import os\n"
        "c = load_config(os.environ['PIPEFORGE_CONFIG'])\n"
        "training.fit(c['dataset_loader_train'], c['model'], c['model_persister'])\n"
    )
    subprocess.run([sys.executable, "-c", fit], env=env, check=True, cwd=folder)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipeforge.cli.pipelines import main; raise SystemExit(main())",
            "run",
            "train_iris",
            "--save",
        ],
        env=env,
        check=True,
        cwd=folder,
        capture_output=True,
    )
    return env


def start(folder: Path, env: dict) -> tuple[subprocess.Popen, str]:
    log_path = folder / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-b",
                "127.0.0.1:0",
                "--no-control-socket",
                "pipeforge.wsgi:app",
            ],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn did not start:\n{text}")
        match = re.search(r"Listening at: http://(127\.0\.0\.1:\d+)", text)
        if match:
            return proc, match.group(1)
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer")


def request(host: str, path: str, body: bytes) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"POST {path} answered {response.status}: {data[:300]!r}")
    return elapsed


def load(host: str, path: str, body: bytes, total: int, threads: int) -> list[float]:
    """``total`` requests spread over ``threads`` threads; the latencies in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        mine = []
        try:
            for _ in range(n):
                mine.append(request(host, path, body))
        except BaseException as exc:  # reported after the join
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(total // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return latencies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="requests per round and endpoint")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    targets = {
        "/predict": json.dumps([dict(zip(FEATURES, SAMPLE, strict=True))]).encode(),
        "/pipelines/predict_iris/main": json.dumps({"pipeline_input": [SAMPLE]}).encode(),
    }
    with tempfile.TemporaryDirectory(prefix="pf-bench-pipelines-") as tmp:
        folder = Path(tmp)
        env = prepare(folder)
        proc, host = start(folder, env)
        try:
            for path, body in targets.items():  # warm up both workers
                load(host, path, body, 100, args.threads)
            results: dict[str, list[float]] = {p: [] for p in targets}
            for _ in range(args.rounds):
                for path, body in targets.items():
                    results[path].extend(load(host, path, body, args.requests, args.threads))
        finally:
            proc.terminate()
            proc.wait(30)

    print(
        f"gunicorn -w 2, {args.threads} client threads, {args.rounds} rounds x {args.requests} "
        "requests per endpoint, one sample per request"
    )
    medians = {}
    for path, values in results.items():
        values.sort()
        medians[path] = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(
            f"  {path:32s} median {medians[path] * 1e3:6.2f} ms   p90 {p90 * 1e3:6.2f} ms   n={len(values)}"
        )
    ratio = medians["/pipelines/predict_iris/main"] / medians["/predict"]
    print(f"  ratio pipeline/predict (median): {ratio:.2f}  (target <= 1.2)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
