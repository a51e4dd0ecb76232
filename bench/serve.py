"""Serving speed: pipeforge's /predict against bare Flask apps, under the same gunicorn.

Three servers run side by side, each ``gunicorn -w 2`` on 127.0.0.1:

(a) pipeforge serving the iris model (``pipeforge.wsgi:app``, model cache),
(b) a bare Flask app answering a constant JSON (the ceiling),
(c) a bare Flask app calling the same model by hand.

wrk (installed with apt-get if missing) loads each in interleaved rounds:
GET /predict with one sample and POST /predict with 100 samples. The script
prints requests/s (median over rounds), the ratios to (b), and the workers'
resident memory. Targets: GET >= 0.85x, POST >= 0.75x of (b); pipeforge's
worker RSS at most 10 MB above (c).

    .venv/bin/python bench/serve.py [--rounds 3] [--duration 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SAMPLE = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
QUERY = "sepal%20length=5.1&sepal%20width=3.5&petal%20length=1.4&petal%20width=0.2"

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


def prepare(folder: Path) -> Path:
    """Fit the iris model, store it for pipeforge and as a joblib file; write the configs."""
    import joblib

    from pipeforge.config import load_config
    from tests.fixtures.gunicorn import iris_config

    config_path = iris_config(folder)
    file_store = {
        "__factory__": "pipeforge.persistence.CachedUpdatePersister",
        "update_cache_rrule": {"freq": "SECONDLY", "interval": 10},
        "impl": {
            "__factory__": "pipeforge.persistence.File",
            "path": f"{folder}/model-{{version}}",
        },
    }
    file_config_path = iris_config(folder, name="config-file.py", model_persister=file_store)
    config = load_config([str(config_path)])
    from pipeforge import training

    result = training.fit(
        config["dataset_loader_train"], config["model"], config["model_persister"]
    )
    joblib.dump(result.model, folder / "model.joblib")
    file_persister = load_config([str(file_config_path)])["model_persister"]
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
    return config_path, file_config_path


def start(app: str, folder: Path, env: dict) -> tuple[subprocess.Popen, str]:
    log_path = folder / f"{app.replace(':', '_')}-{len(list(folder.glob('*.log')))}.log"
    log = open(log_path, "wb")
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
            "--chdir",
            str(folder),
            app,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    url = None
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if proc.poll() is not None:
            raise RuntimeError(f"{app} did not start:\n{text}")
        match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
        if match:
            url = match.group(1)
            try:
                urllib.request.urlopen(f"{url}/predict?{QUERY}", timeout=5).close()
                return proc, url
            except OSError:  # not up yet (refused, reset or timed out)
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{app} did not answer")


def run_wrk(wrk: str, url: str, duration: int, lua: Path | None = None) -> float:
    command = [wrk, "-t", "1", "-c", "4", "-d", f"{duration}s", url]
    if lua is not None:
        command[1:1] = ["-s", str(lua)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while loading {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def worker_rss(proc: subprocess.Popen) -> float:
    workers = psutil.Process(proc.pid).children()
    return statistics.mean(w.memory_info().rss for w in workers) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="pf-bench-serve-") as tmp:
        folder = Path(tmp)
        config_path, file_config_path = prepare(folder)
        apps = {
            "pipeforge": ("pipeforge.wsgi:app", {"PIPEFORGE_CONFIG": str(file_config_path)}),
            "pipeforge+db": ("pipeforge.wsgi:app", {"PIPEFORGE_CONFIG": str(config_path)}),
            "constant": ("constant_app:app", {}),
            "flask+model": ("model_app:app", {}),
        }
        servers = {name: start(app, folder, env) for name, (app, env) in apps.items()}
        rates = {(name, kind): [] for name in apps for kind in ("GET", "POST")}
        try:
            for round_ in range(args.rounds):
                for name, (_, url) in servers.items():
                    rates[name, "GET"].append(run_wrk(wrk, f"{url}/predict?{QUERY}", args.duration))
                    rates[name, "POST"].append(
                        run_wrk(wrk, f"{url}/predict", args.duration, folder / "post.lua")
                    )
                print(f"round {round_ + 1}/{args.rounds} done", flush=True)
            rss = {name: worker_rss(proc) for name, (proc, _) in servers.items()}
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(15)

    print(f"\ngunicorn -w 2, wrk -t1 -c4, {args.rounds} rounds x {args.duration} s, median req/s")
    print(
        f"{'server':<14}{'GET 1 sample':>16}{'ratio':>8}{'POST 100':>12}{'ratio':>8}{'RSS MB':>10}"
    )
    for name in apps:
        get = statistics.median(rates[name, "GET"])
        post = statistics.median(rates[name, "POST"])
        get0 = statistics.median(rates["constant", "GET"])
        post0 = statistics.median(rates["constant", "POST"])
        print(
            f"{name:<14}{get:>16.0f}{get / get0:>8.2f}{post:>12.0f}{post / post0:>8.2f}"
            f"{rss[name]:>10.1f}"
        )
    get_ratio = statistics.median(rates["pipeforge", "GET"]) / statistics.median(
        rates["constant", "GET"]
    )
    post_ratio = statistics.median(rates["pipeforge", "POST"]) / statistics.median(
        rates["constant", "POST"]
    )
    extra = rss["pipeforge"] - rss["flask+model"]
    extra_db = rss["pipeforge+db"] - rss["flask+model"]
    vs_c = statistics.median(rates["pipeforge", "GET"]) / statistics.median(
        rates["flask+model", "GET"]
    )
    print(
        f"\nGET ratio {get_ratio:.2f} (target >= 0.85), POST ratio {post_ratio:.2f} "
        f"(target >= 0.75), RSS above flask+model {extra:+.1f} MB (target <= 10; "
        f"{extra_db:+.1f} MB with the Database persister, which loads SQLAlchemy)"
    )
    print(f"pipeforge GET / flask+model GET: {vs_c:.2f} (what pipeforge adds to the model call)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
