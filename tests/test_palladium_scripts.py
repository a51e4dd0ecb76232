"""A Palladium project run unchanged: examples/palladium-iris through pld-*, pf-* and gunicorn palladium.wsgi:app."""

from __future__ import annotations

import io
import json
import os
import pprint
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from docopt import docopt

from pipeforge import __version__
from pipeforge.cli import scripts
from pipeforge.cli.serve import DEVSERVER_DOC as PF_DEVSERVER_DOC
from pipeforge.palladium_compat import scripts as pld
from pipeforge.palladium_compat.scripts import pld_fit_main
from pipeforge.palladium_compat.serve import DEVSERVER_DOC, pld_dockerize_main
from pipeforge.persistence import Database
from tests.fixtures.gunicorn import _wait_for_url, stop_process

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
QUERY = "sepal%20length=7.7&sepal%20width=3.0&petal%20length=6.1&petal%20width=2.3"
SAMPLE = {"sepal length": 7.7, "sepal width": 3.0, "petal length": 6.1, "petal width": 2.3}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def iris(tmp_path):
    """A copy of examples/palladium-iris (a Palladium project with its own module, iris.py)."""
    folder = tmp_path / "iris"
    shutil.copytree(
        REPO / "examples" / "palladium-iris",
        folder,
        ignore=shutil.ignore_patterns("*.db", "exported", "__pycache__"),
    )
    return folder


def sh(script, cwd, **env):
    return subprocess.run(
        ["bash", "-ec", script],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def palladium_log(stderr: str) -> list[str]:
    """The lines Palladium's logger wrote, without the user's own timer lines."""
    return [
        line[len("INFO:palladium:") :]
        for line in stderr.splitlines()
        if line.startswith("INFO:palladium:") and "iris rows" not in line
    ]


@pytest.fixture
def here(iris, monkeypatch):
    """Run scripts in this process, from the project's folder, with PALLADIUM_CONFIG=config.py."""
    monkeypatch.chdir(iris)
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.setenv("PALLADIUM_CONFIG", "config.py")
    # The project's module (iris.py) is imported once per process, as in a real run: it adds
    # its route to the process's palladium.server.app at import.
    return iris


def run(main, argv, capsys, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_tutorial_with_installed_pld_scripts(iris):
    result = sh(
        "export PALLADIUM_CONFIG=config.py\npld-fit\npld-test\npld-list > listing.txt", iris
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert palladium_log(result.stderr) == [
        "Wrote model with version 1.",
        "Loaded model version 1",
        "Score: score: 0.96.",
    ]
    # Relative paths were taken from the current directory, as in Palladium.
    store = Database(f"sqlite:///{iris / 'iris-model.db'}")
    expected = (
        "Models:\n"
        + pprint.pformat(store.list_models())
        + "\nProperties:\n"
        + pprint.pformat(store.list_properties())
        + "\n"
    )
    assert (iris / "listing.txt").read_text() == expected
    assert "'active-model': '1'" in expected and "'version': 1" in expected


def test_more_pld_scripts_speak_as_palladium(here, capsys):
    steps = [
        (pld.pld_fit_main, ["--evaluate", "--no-activate"]),
        (pld.pld_fit_main, ["--save-if-better-than=0.99"]),
        (pld.pld_fit_main, ["--save-if-better-than=0.96", "--no-activate"]),  # equal: stored
        (pld.pld_test_main, ["--model-version=1"]),
        (pld.pld_admin_main, ["activate", "1"]),
        (pld.pld_fit_main, ["-n"]),
        (pld.pld_export_main, ["--no-activate"]),
        (pld.pld_admin_main, ["delete", "1"]),
        (pld.pld_upgrade_main, []),
    ]
    said = []
    for main, argv in steps:
        code, out, err = run(main, argv, capsys)
        assert code == 0, err
        if main is not pld.pld_upgrade_main:
            assert out == ""  # Palladium wrote these to its log only
        said += palladium_log(err)
    assert said == [
        "Train score: 0.98",
        "Test score:  0.96",
        "Wrote model with version 1.",
        "Train score: 0.98",
        "Test score:  0.96",
        "Not persisting model that has a test score 0.96 < 0.99",
        "Train score: 0.98",
        "Test score:  0.96",
        "Wrote model with version 2.",
        "Loaded model version 1",
        "Score: score: 0.96.",
        "Activated model with version 1.",
        "Exported model. New version number: 1",
        "Deleted model with version 1.",
    ]
    assert (here / "exported" / "iris-1.pickle").exists()  # relative to the current directory
    assert run(pld.pld_version_main, [], capsys)[1] == f"{__version__}\n"
    code, _, err = run(pld.pld_admin_main, ["activate", "7"], capsys)
    assert code == 1 and err.startswith("pld-admin: error: no model with version 7")


def test_grid_search_prints_palladiums_table_best_first(here, capsys):
    code, out, err = run(
        pld.pld_grid_search_main, ["--save-results=results.csv", "--persist-best"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "rank_test_score" in line)
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    assert len(rows) == 3  # every candidate, none elided
    ranks = [int(row[-1]) for row in rows]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert "..." not in out and "params" in out and "mean_fit_time" in out
    import pandas as pd

    saved = pd.read_csv(here / "results.csv")
    assert list(saved["rank_test_score"]) == ranks  # the CSV is the printed table
    assert "Wrote model with version 1." in palladium_log(err)


@pytest.mark.slow
def test_pld_stream_and_pf_scripts_on_the_palladium_project(here, capsys, monkeypatch):
    assert run(scripts.fit_main, [], capsys)[0] == 0
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert json.loads(out)["properties"]["active-model"] == "1"
    lines = [json.dumps([SAMPLE]), "{not json", "", json.dumps([SAMPLE, SAMPLE]), "EXIT", "[]"]
    stdin = "\n".join(lines) + "\n"
    (here / "in.txt").write_text(stdin)
    installed = sh("PALLADIUM_CONFIG=config.py pld-stream < in.txt", here)
    code, out, err = run(scripts.stream_main, [], capsys, stdin, monkeypatch)
    assert (installed.returncode, code) == (0, 0), installed.stderr
    for output, errors, prog in ((installed.stdout, installed.stderr, "pld"), (out, err, "pf")):
        first, bad, empty, fourth = output.splitlines()  # one line per line up to 'exit'
        assert json.loads(first) == ["Iris-virginica"]
        assert json.loads(fourth) == ["Iris-virginica", "Iris-virginica"]
        for line, number in ((bad, 2), (empty, 3)):
            error = json.loads(line)["metadata"]
            assert error["status"] == "ERROR" and error["service_name"] == "iris"
            assert error["error_message"].startswith(f"line {number}: ")
            assert f"{prog}-stream: error: line {number}: " in errors


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.slow
def test_gunicorn_serves_palladium_wsgi_app(here, tmp_path, capsys):
    iris = here
    assert run(pld_fit_main, [], capsys)[0] == 0
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0"]
    command += ["--no-control-socket", "palladium.wsgi:app"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, cwd=iris, env=_env(PALLADIUM_CONFIG="config.py"), stdout=log, stderr=log
        )
    try:
        url = _wait_for_url(proc, log_path, 60)
        body = _get(f"{url}/predict?{QUERY}")
        assert body["result"] == "Iris-virginica"
        assert body["metadata"] == {
            "service_name": "iris",
            "service_version": "0.1",
            "error_code": 0,
            "status": "OK",
        }
        # The project's own route on palladium.server.app, and its predict decorator
        # counting in palladium.util.process_store.
        assert _get(f"{url}/model-version") == {"version": 1, "predictions": 1}
        assert _get(f"{url}/alive")["model"]["metadata"]["version"] == 1
    finally:
        stop_process(proc)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_until_alive(command, cwd, env, log_path):
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/alive", timeout=5).close()
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)


@pytest.mark.slow
def test_pld_devserver_serves_the_projects_app(here, tmp_path, capsys):
    iris = here
    assert run(pld_fit_main, [], capsys)[0] == 0
    log_path = tmp_path / "devserver.log"
    proc, url = _serve_until_alive(
        [str(BIN / "pld-devserver"), "--debug=0"],
        iris,
        _env(PALLADIUM_CONFIG="config.py"),
        log_path,
    )
    try:
        assert _get(f"{url}/predict?{QUERY}")["result"] == "Iris-virginica"
        assert _get(f"{url}/model-version")["version"] == 1
    finally:
        stop_process(proc)
    assert "Debug mode: off" in log_path.read_text()


@pytest.mark.slow
def test_pf_devserver_takes_debug_as_a_number(iris, tmp_path):
    log_path = tmp_path / "devserver.log"
    proc, url = _serve_until_alive(
        [str(BIN / "pf-devserver"), "--debug=1"], iris, _env(PALLADIUM_CONFIG="config.py"), log_path
    )
    stop_process(proc)
    assert "Debug mode: on" in log_path.read_text()


def test_devserver_default_hosts():
    assert docopt(DEVSERVER_DOC, argv=[])["--host"] == "0.0.0.0"  # Palladium's default
    assert docopt(PF_DEVSERVER_DOC, argv=[])["--host"] == "127.0.0.1"  # pipeforge's own


@pytest.mark.parametrize("main", ["pld", "pf"])
def test_devserver_rejects_a_bad_debug_value(main, capsys, monkeypatch, tmp_path):
    from pipeforge.cli.serve import devserver_main
    from pipeforge.palladium_compat.serve import pld_devserver_main

    (tmp_path / "config.py").write_text("{}")
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(tmp_path / "config.py"))
    run = pld_devserver_main if main == "pld" else devserver_main
    assert run(["--debug=2"]) == 2
    assert "--debug must be 0 or 1" in capsys.readouterr().err


def test_pld_fit_options_and_usage_errors(capsys):
    assert pld_fit_main(["--frobnicate"]) == 2
    assert (
        capsys.readouterr().err == "pld-fit: error: unknown option --frobnicate; see pld-fit -h\n"
    )
    assert pld_fit_main(["-h"]) == 0
    usage = capsys.readouterr().out
    for option in ("--no-save", "--no-activate", "--save-if-better-than=<k>", "--evaluate"):
        assert option in usage


def test_pld_dockerize_writes_palladium_dockerfiles_here(iris, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert pld_dockerize_main(["-d", str(iris), "me/base:1", "me/iris:0.1"]) == 0
    app = (tmp_path / "Dockerfile-app").read_text()
    predict = (tmp_path / "Dockerfile-predict").read_text()
    assert "FROM me/base:1" in app and "ENV PALLADIUM_CONFIG=/app/config.py" in app
    assert "FROM me/iris:0.1" in predict and "RUN pld-fit" in predict
    assert '"palladium.wsgi:app"' in predict and "pipeforge.wsgi" not in predict
    assert not (iris / "Dockerfile-app").exists()  # written where Palladium wrote them
