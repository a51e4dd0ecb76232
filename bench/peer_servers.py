"""The servers of ``bench/peers.py``: how each is started, asked, and loaded by wrk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSON = {"Content-Type": "application/json"}
META = {"service_name": "iris", "service_version": "0.1", "status": "OK", "error_code": 0}

FLASK_APP = """
import joblib
import numpy as np
from flask import Flask, request

app = Flask(__name__)
MODEL = joblib.load({model!r})
NAMES = {names!r}
META = {meta!r}


@app.route("/predict", methods=["GET", "POST"])
def predict():
    if request.method == "POST":
        X = np.array([[float(s[n]) for n in NAMES] for s in request.get_json()])
        return {{"result": MODEL.predict(X).tolist(), "metadata": META}}
    X = np.array([[float(request.args[n]) for n in NAMES]])
    return {{"result": MODEL.predict(X).tolist()[0], "metadata": META}}
"""

FLOOR_APP = """
BODY = b'{{"result": "Iris-setosa", "metadata": {meta}}}'
HEAD = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    length = environ.get("CONTENT_LENGTH")
    if length:
        environ["wsgi.input"].read(int(length))
    start_response("200 OK", HEAD)
    return [BODY]
"""

BENTO_SERVICE = """
import bentoml
import joblib
import numpy as np

MODEL = {model!r}


@bentoml.service(workers=2)
class Model:
    def __init__(self):
        self.model = joblib.load(MODEL)

    @bentoml.api
    def predict(self, samples: list[list[float]]) -> list:
        return self.model.predict(np.array(samples)).tolist()
"""


@dataclass
class Server:
    name: str
    env: str  # "flask", "pipeforge" (this venv), "bentoml", "mlserver", "mlflow"
    methods: tuple[str, ...]
    start: Callable[..., tuple[list[str], Path, dict]] = field(repr=False)
    request: Callable[[str, list, str], tuple[str, bytes | None, dict]] = field(repr=False)
    answer: Callable[[object], list | None] = field(repr=False)
    ready: str = "/predict?"

    def ask(self, url: str, rows: list, method: str) -> list | None:
        """The labels the server answers for ``rows`` (``None`` for the constant floor)."""
        target, body, headers = self.request(url, rows, method)
        call = urllib.request.Request(target, data=body, headers=headers, method=method)
        with urllib.request.urlopen(call, timeout=30) as response:
            decoded = json.loads(response.read())
        labels = self.answer(decoded)
        return labels if labels is None or isinstance(labels, list) else [labels]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- requests and answers of each kind ---------------------------------------------


def _names(rows: list, features: list[str]) -> list[dict]:
    return [dict(zip(features, row, strict=True)) for row in rows]


def _pipeforge_request(features: list[str]) -> Callable:
    def request(url: str, rows: list, method: str):
        if method == "GET":
            return f"{url}/predict?{urllib.parse.urlencode(_names(rows, features)[0])}", None, {}
        return f"{url}/predict", json.dumps(_names(rows, features)).encode(), JSON

    return request


def _pipeforge_answer(decoded):
    return decoded["result"]


def _floor_answer(decoded):
    assert decoded["metadata"]["status"] == "OK"
    return None


def _bento_request(url: str, rows: list, method: str):
    return f"{url}/predict", json.dumps({"samples": rows}).encode(), JSON


def _mlserver_request(url: str, rows: list, method: str):
    flat = [value for row in rows for value in row]
    tensor = {
        "name": "input-0",
        "shape": [len(rows), len(rows[0])],
        "datatype": "FP64",
        "data": flat,
    }
    return f"{url}/v2/models/model/infer", json.dumps({"inputs": [tensor]}).encode(), JSON


def _mlserver_answer(decoded):
    return decoded["outputs"][0]["data"]


def _mlflow_request(url: str, rows: list, method: str):
    return f"{url}/invocations", json.dumps({"inputs": rows}).encode(), JSON


def _mlflow_answer(decoded):
    return decoded["predictions"]


# -- starting each ------------------------------------------------------------------


def _gunicorn(env: Path, app: str, port: int, extra: list[str]) -> list[str]:
    return [
        str(env / "bin" / "python"), "-m", "gunicorn", "-w", "2", *extra, "--reuse-port",
        "-b", f"127.0.0.1:{port}", "--no-control-socket", app,
    ]  # fmt: skip


def _start_flask(ctx: dict) -> tuple[list[str], Path, dict]:
    folder = ctx["folder"]
    source = FLASK_APP.format(model=str(ctx["model"]), names=ctx["features"], meta=META)
    (folder / "model_app.py").write_text(source)
    return _gunicorn(ctx["envs"]["flask"], "model_app:app", ctx["port"], []), folder, {}


def _start_floor(ctx: dict) -> tuple[list[str], Path, dict]:
    folder = ctx["folder"]
    (folder / "floor_app.py").write_text(FLOOR_APP.format(meta=json.dumps(META)))
    return _gunicorn(ctx["envs"]["flask"], "floor_app:app", ctx["port"], []), folder, {}


def _start_floor_granian(ctx: dict) -> tuple[list[str], Path, dict]:
    folder = ctx["folder"]
    (folder / "floor_app.py").write_text(FLOOR_APP.format(meta=json.dumps(META)))
    granian = str(Path(sys.prefix) / "bin" / "granian")
    command = [granian, "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1"]
    return [*command, "--port", str(ctx["port"]), "floor_app:app"], folder, {}


def _pipeforge_config(ctx: dict, batching: bool) -> Path:
    """A pipeforge config serving the model file from a ``File`` store in the folder."""
    import joblib

    sys.path.insert(0, str(ROOT))
    from pipeforge.config import load_config
    from tests.fixtures.gunicorn import iris_config

    folder = ctx["folder"] / f"pf-{ctx['name']}"
    folder.mkdir(exist_ok=True)
    store = {
        "__factory__": "pipeforge.persistence.CachedUpdatePersister",
        "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
        "impl": {
            "__factory__": "pipeforge.persistence.File",
            "path": f"{folder}/model-{{version}}",
        },
    }
    entries = {"model_persister": store, "flask_add_url_rules": None, "security": None}
    if batching:
        entries["batching"] = {"max_batch_size": 64, "max_wait_ms": 2}
    path = iris_config(folder, name="config.py", **entries)
    persister = load_config([str(path)])["model_persister"]
    persister.activate(persister.write(joblib.load(ctx["model"])))
    return path


def _start_pipeforge(extra: list[str], batching: bool) -> Callable:
    def start(ctx: dict) -> tuple[list[str], Path, dict]:
        config = _pipeforge_config(ctx, batching)
        command = _gunicorn(Path(sys.prefix), "pipeforge.wsgi:app", ctx["port"], extra)
        return command, ROOT, {"PIPEFORGE_CONFIG": str(config)}

    return start


def _start_pf_serve(ctx: dict) -> tuple[list[str], Path, dict]:
    config = _pipeforge_config(ctx, batching=False)
    env = {"PIPEFORGE_CONFIG": str(config)}
    pf_serve = Path(sys.prefix) / "bin" / "pf-serve"
    if pf_serve.exists():
        return [str(pf_serve), "-w", "2", "-b", f"127.0.0.1:{ctx['port']}"], ROOT, env
    granian = shutil.which("granian") or str(Path(sys.prefix) / "bin" / "granian")
    command = [granian, "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1"]
    return [*command, "--port", str(ctx["port"]), "pipeforge.wsgi:app"], ROOT, env


def _start_bentoml(ctx: dict) -> tuple[list[str], Path, dict]:
    folder = ctx["folder"] / "bento"
    folder.mkdir(exist_ok=True)
    (folder / "service.py").write_text(BENTO_SERVICE.format(model=str(ctx["model"])))
    bentoml = str(ctx["envs"]["bentoml"] / "bin" / "bentoml")
    command = [bentoml, "serve", "service:Model", "--host", "127.0.0.1", "--port", str(ctx["port"])]
    return command, folder, {"BENTOML_HOME": str(ctx["folder"] / "bentoml-home")}


def _start_mlserver(ctx: dict) -> tuple[list[str], Path, dict]:
    folder = ctx["folder"] / "mlserver"
    folder.mkdir(exist_ok=True)
    shutil.copy(ctx["model"], folder / "model.joblib")
    settings = {
        "host": "127.0.0.1",
        "http_port": ctx["port"],
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        # MLServer 1.7.1's parallel inference workers die at start with the uvloop it
        # installs ("no current event loop"): inference runs in its one server process
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "model",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    (folder / "model-settings.json").write_text(json.dumps(model))
    return [str(ctx["envs"]["mlserver"] / "bin" / "mlserver"), "start", str(folder)], folder, {}


def _start_mlflow(ctx: dict) -> tuple[list[str], Path, dict]:
    env = ctx["envs"]["mlflow"]
    model_dir = ctx["folder"] / "mlflow-model"
    shutil.rmtree(model_dir, ignore_errors=True)
    save = (
        "import joblib, mlflow.sklearn; "
        f"mlflow.sklearn.save_model(joblib.load({str(ctx['model'])!r}), {str(model_dir)!r}, "
        # MLflow's default (skops) refuses a forest's tree type without a trust list
        "serialization_format='cloudpickle')"
    )
    subprocess.run([str(env / "bin" / "python"), "-c", save], check=True, capture_output=True)
    command = [str(env / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir)]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(ctx["port"])]
    path = f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return [*command, "--workers", "2"], ctx["folder"], {"PATH": path}


def _servers(features: list[str]) -> dict[str, Server]:
    pf_request = _pipeforge_request(features)
    both = ("GET", "POST")
    threads = ["-k", "gthread", "--threads", "8"]
    table = [
        Server("flask+model", "flask", both, _start_flask, pf_request, _pipeforge_answer),
        Server("floor", "flask", both, _start_floor, pf_request, _floor_answer),
        Server("floor-granian", "flask", both, _start_floor_granian, pf_request, _floor_answer),
        Server(
            "pf-gunicorn", "pipeforge", both, _start_pipeforge([], False), pf_request,
            _pipeforge_answer,
        ),
        Server(
            "pf-threads", "pipeforge", both, _start_pipeforge(threads, True), pf_request,
            _pipeforge_answer,
        ),
        Server("pf-serve", "pipeforge", both, _start_pf_serve, pf_request, _pipeforge_answer),
        Server(
            "bentoml", "bentoml", ("POST",), _start_bentoml, _bento_request, lambda d: d,
            ready="/readyz",
        ),
        Server(
            "mlserver", "mlserver", ("POST",), _start_mlserver, _mlserver_request,
            _mlserver_answer, ready="/v2/models/model/ready",
        ),
        Server(
            "mlflow", "mlflow", ("POST",), _start_mlflow, _mlflow_request, _mlflow_answer,
            ready="/ping",
        ),
    ]  # fmt: skip
    return {server.name: server for server in table}


FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SERVERS = _servers(FEATURES)


def start_server(server: Server, envs: dict, model: Path, folder: Path, features: list[str]):
    """Start ``server`` serving ``model``; ``{"proc", "url", "stop"}`` once it answers."""
    port = _free_port()
    ctx = {"name": server.name, "envs": envs, "model": model, "folder": folder, "port": port}
    ctx["features"] = features
    command, cwd, extra = server.start(ctx)
    log_path = folder / f"{server.name}.log"
    log = open(log_path, "ab")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEFORGE_", "PYTHON"))}
    env = {**clean, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **extra}
    if server.env == "pipeforge":
        env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"{server.name} exited:\n{log_path.read_text(errors='replace')[-3000:]}"
            )
        try:
            if server.ready == "/predict?":
                server.ask(url, [[5.1, 3.5, 1.4, 0.2]], server.methods[-1])
            else:
                urllib.request.urlopen(url + server.ready, timeout=5).close()
            return {"proc": proc, "url": url, "stop": stop}
        except (OSError, urllib.error.HTTPError, KeyError, ValueError):
            time.sleep(0.3)
    stop()
    raise SystemExit(f"{server.name} did not answer within 180 s; see {log_path}")
