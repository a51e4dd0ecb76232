"""``pf-devserver`` serves as a gunicorn worker does: the model cache refresh and the
follower of pipeline loads run in it, so what other processes store and load is served.

The real installed scripts: ``pf-devserver`` in one process, ``pf-fit`` and
``pf-pipeline`` in others, against one SQLite model store and one op store.
"""

from __future__ import annotations

import json
import os
import pprint
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.fixtures.gunicorn import iris_config_dict, stop_process
from tests.fixtures.postgres import _free_port
from tests.fixtures.workers import BIN, ROOT

pytestmark = pytest.mark.slow

IRIS = ROOT / "examples" / "iris"
QUERY = "sepal%20length=5.1&sepal%20width=3.5&petal%20length=1.4&petal%20width=0.2"
SAMPLE = [[5.1, 3.5, 1.4, 0.2]]


def write_config(tmp_path: Path) -> Path:
    """The iris model served with a cache refreshed every second, and the iris pipelines."""
    pipelines = yaml.safe_load((IRIS / "pipelines.yaml").read_text())
    pipelines["ops"]["iris"]["loader"]["path"] = str(IRIS / "iris.data")
    entries = iris_config_dict(tmp_path)
    entries.pop("flask_add_url_rules")
    entries.pop("security", None)
    entries.update(
        ops=pipelines["ops"],
        pipelines=pipelines["pipelines"],
        op_store={"url": f"sqlite:///{tmp_path}/ops.db"},
        pipelines_refresh={"freq": "SECONDLY", "interval": 1},
    )
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat(entries, sort_dicts=False))
    return path


def script(name: str, *args: str, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config)}
    result = subprocess.run(
        [str(BIN / name), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


def get(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_for(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0):
    """Call ``check()`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError):
            value = None
        if value:
            return value
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{what} within {timeout} s:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.fixture
def devserver(tmp_path):
    config = write_config(tmp_path)
    port = _free_port()
    log = tmp_path / "devserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "pf-devserver"), "--port", str(port)],
            env={**os.environ, "PIPEFORGE_CONFIG": str(config)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(url + "/alive")[0] == 503, "no answer (no model yet)", proc, log)
        yield url, config, proc, log
    finally:
        stop_process(proc)


def test_devserver_serves_a_model_fitted_elsewhere(devserver):
    url, config, proc, log = devserver
    assert get(f"{url}/predict?{QUERY}")[0] == 503
    script("pf-fit", config=config)
    status, body = wait_for(
        lambda: (answer := get(f"{url}/predict?{QUERY}"))[0] == 200 and answer,
        "the model pf-fit stored is not served",
        proc,
        log,
    )
    assert body["result"] == "Iris-setosa"


def test_devserver_follows_pipeline_loads_of_other_processes(devserver):
    url, config, proc, log = devserver
    main = f"{url}/pipelines/predict_iris/main"

    def loaded() -> dict:
        script("pf-pipeline", "run", "train_iris", "--save", config=config)
        return json.loads(script("pf-pipeline", "load", "predict_iris", config=config).stdout)

    first = loaded()["versions"]
    status, body = get(main, {"pipeline_input": SAMPLE})
    assert status == 200 and body["versions"] == first, body

    second = loaded()["versions"]
    assert second != first
    wait_for(
        lambda: get(main, {"pipeline_input": SAMPLE})[1].get("versions") == second,
        "the load recorded by pf-pipeline is not followed",
        proc,
        log,
    )
