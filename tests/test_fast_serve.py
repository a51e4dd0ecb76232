"""``pf-serve``: granian or gunicorn chosen and set up for the machine, the app loaded once.

The served model here says which process unpickled it (``LoadedIn``): a
worker forked after the app was loaded answers the pid of ``pf-serve``
itself, a worker that loaded its own copy answers its own pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest
import requests

from pipeforge.cli.fast_serve import command_line, serve_main, serve_settings
from pipeforge.config import load_config
from tests.fixtures.granian import BIN, wait_until_up
from tests.fixtures.gunicorn import ROOT, iris_config, stop_process
from tests.fixtures.postgres import _free_port

QUERY = {"x": 1.0}


class LoadedIn:
    """A model answering the pid of the process that loaded (unpickled) it."""

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag
        self.loaded_in = os.getpid()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.loaded_in = os.getpid()

    def predict(self, X):
        return np.full(len(X), self.loaded_in * 10 + self.tag)


def store_model(config_path, tag: int = 0) -> None:
    persister = load_config([str(config_path)])["model_persister"]
    persister.activate(persister.write(LoadedIn(tag)))


def pid_config(tmp_path, **entries):
    path = iris_config(
        tmp_path,
        predict_service={
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [["x", "float"]],
        },
        **entries,
    )
    store_model(path)
    return path


def answers(url: str, tries: int = 12) -> set[int]:
    """The ``/predict`` answers over fresh connections (so that every worker answers)."""
    found = set()
    for _ in range(tries):
        with requests.Session() as session:
            response = session.get(url + "/predict", params=QUERY, timeout=30)
            assert response.status_code == 200, response.text
            found.add(int(response.json()["result"]))
    return found


def after_reload(url: str) -> set[int] | None:
    """:func:`answers`, or ``None`` for a connection reset by a worker that is stopping.

    Each worker listens on a socket of its own (``SO_REUSEPORT``): a connection
    still queued on an old worker's socket when it closes is reset, unless the
    kernel hands it over (``sysctl net.ipv4.tcp_migrate_req=1``; docs/serving.md).
    """
    try:
        return answers(url)
    except requests.ConnectionError:
        return None


def worker_pids(proc: subprocess.Popen, count: int = 2) -> set[int]:
    """The pids of the server's workers, once there are ``count`` of them."""
    master = psutil.Process(proc.pid)
    eventually(lambda: len(master.children()) == count)
    return {child.pid for child in master.children()}


def eventually(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not met within {timeout} s"
        time.sleep(0.2)


@pytest.fixture
def pf_serve(tmp_path):
    """Start the installed ``pf-serve`` with options: ``(process, base URL)``."""
    started: list[subprocess.Popen] = []

    def start(config_path, *options: str) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        log_path = tmp_path / f"pf-serve-{len(started)}.log"
        env = {**os.environ, "PIPEFORGE_CONFIG": str(config_path)}
        command = [str(BIN / "pf-serve"), f"--bind=127.0.0.1:{port}", "--graceful-timeout=5"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [*command, *options], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        started.append(proc)
        return proc, wait_until_up(proc, f"http://127.0.0.1:{port}", log_path, 60)

    yield start
    for proc in started:
        stop_process(proc)


# -- settings and the command line ------------------------------------------------------


def test_help_names_the_servers_and_the_options(capsys):
    assert serve_main(["-h"]) == 0
    text = capsys.readouterr().out
    for word in ("granian", "gunicorn", "--bind", "--workers", "--threads", "--dry-run"):
        assert word in text


def test_dry_run_prints_the_command_with_settings_for_the_cores(capsys):
    assert serve_main(["--dry-run", "--server", "granian", "-b", "0.0.0.0:9000"]) == 0
    line, note = capsys.readouterr().out.splitlines()
    cores = len(os.sched_getaffinity(0))
    assert line.startswith("granian --interface=wsgi --host=0.0.0.0 --port=9000 ")
    assert f"--workers={cores}" in line and line.endswith(" pipeforge.wsgi:app")
    assert f"--blocking-threads={min(16, max(4, 2 * cores))}" in line
    assert "batching on" in note and "loaded once before the workers fork" in note


def test_gunicorn_gets_the_same_behaviour():
    args = {
        "--server": "gunicorn",
        "--bind": "127.0.0.1:8000",
        "--workers": "3",
        "--threads": None,
        "--timeout": "60",
        "--graceful-timeout": "30",
        "--no-preload": False,
    }
    settings = serve_settings(args, cores=8)
    line = command_line(settings)
    assert line[:3] == ["gunicorn", "--bind=127.0.0.1:8000", "--workers=3"]
    assert "--worker-class=gthread" in line and "--threads=16" in line
    assert "--preload" in line and "--reuse-port" in line
    assert "--limit-request-line 8190" in " ".join(line)
    single = command_line(serve_settings({**args, "--threads": "1"}, cores=8))
    assert not any(option.startswith("--worker-class") for option in single)


@pytest.mark.parametrize(
    "options, problem",
    [
        (["--server", "tornado"], "--server must be granian, gunicorn or auto; got 'tornado'"),
        (["--bind", "localhost:http"], "--bind must be HOST:PORT"),
        (["--threads", "0"], "--threads must be a positive integer; got '0'"),
        (["--workers"], "option --workers needs a value"),
    ],
)
def test_bad_options_say_what_is_wrong(options, problem, capsys):
    assert serve_main(["--dry-run", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pf-serve: error: ") and problem in err


def test_options_from_the_environment_come_first(capsys, monkeypatch):
    monkeypatch.setenv("PF_SERVE_ARGS", "--workers 5 --bind 0.0.0.0:8000")
    assert serve_main(["--dry-run", "--server", "gunicorn", "--bind", "127.0.0.1:9001"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "--workers=5" in line and "--bind=127.0.0.1:9001" in line


def test_a_config_error_is_one_line_before_any_server_starts(tmp_path):
    path = iris_config(tmp_path, model={"__factory__": "sklearn.nowhere.Model"})
    result = subprocess.run(
        [str(BIN / "pf-serve"), "--config", str(path), "--bind", f"127.0.0.1:{_free_port()}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("pf-serve: error: ") and "model.__factory__" in lines[-1]
    assert "Starting granian" not in result.stderr and "Booting worker" not in result.stderr


# -- for real ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_workers_serve_the_model_loaded_before_they_forked(tmp_path, pf_serve, server):
    path = pid_config(tmp_path)
    proc, url = pf_serve(path, f"--server={server}", "--workers=2", "--threads=4")
    workers = worker_pids(proc)
    assert answers(url) == {proc.pid * 10}  # both workers: the master's copy

    # A new model: each worker's refresh loads it, and so does the master's ...
    store_model(path, tag=1)
    eventually(lambda: all(a % 10 == 1 for a in answers(url)))
    assert {a // 10 for a in answers(url, tries=20)} <= workers
    # ... so workers forked again by a graceful reload share the master's copy again.
    os.kill(proc.pid, signal.SIGHUP)
    eventually(lambda: after_reload(url) == {proc.pid * 10 + 1}, timeout=60)
    assert proc.poll() is None


@pytest.mark.slow
def test_without_preload_each_worker_loads_its_own(tmp_path, pf_serve):
    path = pid_config(tmp_path)
    proc, url = pf_serve(path, "--server=granian", "--workers=2", "--no-preload")
    workers = worker_pids(proc)
    found = answers(url, tries=20)
    assert proc.pid * 10 not in found and {a // 10 for a in found} <= workers


@pytest.mark.slow
def test_a_worker_that_dies_is_replaced(tmp_path, pf_serve):
    path = pid_config(tmp_path)
    proc, url = pf_serve(path, "--server=granian", "--workers=2")
    master = psutil.Process(proc.pid)
    victim = master.children()[0]
    victim.kill()
    victim.wait(10)
    eventually(
        lambda: (
            {c.pid for c in master.children()} - {victim.pid} == {c.pid for c in master.children()}
            and len(master.children()) == 2
        )
    )
    assert answers(url) == {proc.pid * 10}  # the new worker, forked from the master too
    assert proc.poll() is None


@pytest.mark.slow
def test_granian_s_own_command_sums_metrics_over_its_workers(tmp_path, granian_server):
    path = pid_config(tmp_path)
    url = granian_server(path, workers=2, plain=True)
    for _ in range(10):
        assert requests.get(url + "/predict", params=QUERY, timeout=30).status_code == 200

    def counted() -> bool:
        text = requests.get(url + "/metrics", timeout=30).text
        line = next(
            (
                line
                for line in text.splitlines()
                if line.startswith("pipeforge_requests_total{")
                and 'route="/predict"' in line
                and 'status="200"' in line
            ),
            "",
        )
        return line.endswith(" 10.0")

    eventually(counted)  # whichever worker answers the scrape
