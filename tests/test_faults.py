"""Faults degrade, they never kill: a real gunicorn against stores that fail under it.

Each test starts the real parts (gunicorn with two workers, a PostgreSQL
server of the test's own that it stops and starts, SQLite files moved and
deleted under the server, Redis) and drives them the way an operator meets
them. A client thread sends requests all along (:class:`Load`) and records
every answer; each test prints one line of figures (requests sent, failed,
503s, seconds to recover) and asserts what a client may see: no failed
request beyond the one in flight when a worker is killed, 503 with the JSON
error body while a store is down, never a driver's words or a URL's
password, and serving again once the store is back, by itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests

from pipeforge import training
from pipeforge.config import load_config
from tests.fixtures.gunicorn import ROOT, iris_config
from tests.fixtures.online import online_config

pytestmark = pytest.mark.slow

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}
REFRESH = {"freq": "SECONDLY", "interval": 1}
#: words of drivers and of their errors, which no client may read
DRIVER_WORDS = (
    "psycopg",
    "sqlite3",
    "OperationalError",
    "Connection refused",
    "redis.",
    "Error 111",
)
PASSWORD = "hunter2-secret"
#: pipeforge's INFO lines in the gunicorn log too: "model cache now holds version 1" per worker
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"pipeforge": {"level": "INFO", "handlers": ["stderr"], "propagate": False}},
}


def store_config(tmp_path: Path, url: str, name: str = "config.py", **entries) -> Path:
    """An iris serving config (no lifecycle routes) whose model store is ``url``."""
    persister = {
        "__factory__": "pipeforge.persistence.CachedUpdatePersister",
        "update_cache_rrule": REFRESH,
        "impl": {"__factory__": "pipeforge.persistence.Database", "url": url},
    }
    entries.setdefault("flask_add_url_rules", None)
    return iris_config(tmp_path, name=name, model_persister=persister, logging=LOGGING, **entries)


def fit_model(config_path: Path) -> int:
    config = load_config([str(config_path)])
    try:
        return training.fit(
            config["dataset_loader_train"], config["model"], config["model_persister"]
        ).version
    finally:
        config["model_persister"].impl.close()


def wait_for(check, what: str, timeout: float = 30.0, interval: float = 0.05, load=None):
    """Call ``check()`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            seen = "" if load is None else f" ({load.figures(what)}; {load.failures[-3:]})"
            raise AssertionError(f"{what}: not within {timeout} s{seen}")
        time.sleep(interval)


def log_says(log: Path, text: str, times: int) -> bool:
    """Whether the server log holds ``text`` (at least) ``times`` times."""
    return log.read_text(errors="replace").count(text) >= times


def wait_for_log(log: Path, text: str, times: int = 2) -> None:
    """Wait until the log holds ``text`` ``times`` times (by default once per worker)."""
    wait_for(lambda: log_says(log, text, times), f"{text!r} {times} times in {log}")


def gunicorn_processes(config_path: Path) -> tuple[psutil.Process, list[psutil.Process]]:
    """The gunicorn master serving ``config_path`` and its workers."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "pipeforge.wsgi:app" not in (proc.info["cmdline"] or []):
                continue
            if proc.environ().get("PIPEFORGE_CONFIG") != str(config_path):
                continue
            if proc.parent() is not None and "pipeforge.wsgi:app" in proc.parent().cmdline():
                continue  # a worker
            return proc, proc.children()
        except psutil.Error:
            continue
    raise AssertionError(f"no gunicorn master serves {config_path}")


def kill_a_worker(config_path: Path) -> int:
    """SIGKILL one worker; wait until the master has two workers again; the killed pid."""
    master, workers = gunicorn_processes(config_path)
    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)

    def respawned():
        children = [p.pid for p in master.children()]
        return len(children) == 2 and victim not in children

    wait_for(respawned, "the master respawns the killed worker")
    assert master.is_running()
    return victim


class Load:
    """A client thread calling ``method path`` over and over; every answer is recorded.

    ``records`` holds ``(time.monotonic(), status)``; status is the HTTP
    status, or ``"failed"`` for a request that got no answer (its text in
    ``failures``).
    """

    def __init__(self, url: str, path: str = "/predict", *, params=None, body=None):
        self.url, self.path, self.params, self.body = url, path, params, body
        self.records: list[tuple[float, int | str]] = []
        self.failures: list[str] = []
        self.bodies_503: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.body is None:
                    answer = requests.get(self.url + self.path, params=self.params, timeout=15)
                else:
                    answer = requests.post(self.url + self.path, json=self.body, timeout=15)
                status: int | str = answer.status_code
                if status == 503:
                    self.bodies_503.append(answer.text)
            except requests.RequestException as exc:
                status = "failed"
                self.failures.append(repr(exc))
            self.records.append((time.monotonic(), status))

    def count(self, status: int | str, since: float = float("-inf")) -> int:
        return sum(1 for moment, got in self.records if got == status and moment >= since)

    def answered(self, status: int, n: int, since: float = float("-inf")) -> bool:
        """Whether the last ``n`` answers after ``since`` all had ``status``."""
        last = [got for moment, got in self.records[-n:] if moment >= since]
        return len(last) == n and all(got == status for got in last)

    def figures(self, fault: str, recovery: float | None = None) -> str:
        statuses = Counter(status for _, status in self.records)
        others = {k: v for k, v in statuses.items() if k not in (200, 201, 503, "failed")}
        line = (
            f"FAULT {fault}: sent {len(self.records)}, failed {statuses['failed']}, "
            f"503 {statuses[503]}, other {others or 0}"
        )
        if recovery is not None:
            line += f", recovered {recovery:.2f} s after the store was back"
        print(line)
        return line


def assert_no_store_words(text: str, *extra: str) -> None:
    for word in (*DRIVER_WORDS, PASSWORD, *extra):
        assert word not in text, (word, text)


def assert_store_unavailable(answer: requests.Response, *extra: str) -> None:
    assert answer.status_code == 503, answer.text
    metadata = answer.json()["metadata"]
    assert metadata["status"] == "ERROR"
    assert "the model store cannot be read right now; retrying" in metadata["error_message"]
    assert_no_store_words(answer.text, *extra)


# -- the model store: PostgreSQL ----------------------------------------------------------


@pytest.mark.postgres
def test_workers_boot_while_postgres_is_down_and_serve_once_it_is_back(
    tmp_path, postgres_cluster, gunicorn_server
):
    path = store_config(tmp_path, postgres_cluster.url)
    fit_model(path)
    postgres_cluster.stop()

    url = gunicorn_server(path)  # boots: no "Worker failed to boot"
    log = tmp_path / "gunicorn-0.log"
    wait_for_log(log, "cannot be read (")  # both workers are up, without the store
    port = str(postgres_cluster.port)
    for route in ("/predict", "/alive"):
        assert_store_unavailable(requests.get(url + route, params=SETOSA, timeout=10), port)
    with Load(url, params=SETOSA) as load:
        wait_for(lambda: load.count(503) >= 20, "503s while PostgreSQL is down")
        postgres_cluster.start()
        back = time.monotonic()
        wait_for(lambda: load.answered(200, 40, since=back), "every worker serves again")
        first = min(moment for moment, status in load.records if status == 200)
    load.figures("postgres down at boot", first - back)
    assert load.count("failed") == 0, load.failures
    assert set(status for _, status in load.records) <= {200, 503}
    for body in load.bodies_503:
        assert_no_store_words(body, port)
    text = log.read_text()
    assert "Worker failed to boot" not in text and "Shutting down" not in text
    # each worker said the outage once, and once that it was over
    assert text.count("cannot be read (") == 2, text
    assert text.count("can be read again") == 2, text


@pytest.mark.postgres
def test_postgres_stopped_and_started_under_load_with_a_worker_killed_meanwhile(
    tmp_path, postgres_cluster, gunicorn_server
):
    path = store_config(tmp_path, postgres_cluster.url)
    fit_model(path)
    url = gunicorn_server(path)
    wait_for_log(tmp_path / "gunicorn-0.log", "model cache now holds version 1")
    with Load(url, params=SETOSA) as load:
        wait_for(lambda: load.count(200) >= 20, "the service serves")
        postgres_cluster.stop()
        down = time.monotonic()
        # the workers keep the last good model: still served
        wait_for(lambda: load.count(200, since=down) >= 50, "serving while PostgreSQL is down")
        assert load.count(503) == 0 and load.count("failed") == 0, load.bodies_503[:3]
        kill_a_worker(path)  # respawned while the store is down: it boots anyway
        killed = time.monotonic()
        wait_for(lambda: load.count(503, since=killed) >= 5, "the new worker answers 503")
        master, _ = gunicorn_processes(path)
        postgres_cluster.start()
        back = time.monotonic()
        wait_for(lambda: load.answered(200, 40, since=back), "every worker serves again")
        last_503 = max(moment for moment, status in load.records if status == 503)
    load.figures("postgres restart + SIGKILL during the outage", max(last_503 - back, 0.0))
    assert master.is_running() and len(master.children()) == 2
    assert load.count("failed") <= 1, load.failures  # at most the request in flight at the kill
    assert set(status for _, status in load.records) <= {200, 503, "failed"}
    for body in load.bodies_503:
        assert_no_store_words(body, str(postgres_cluster.port))


def test_workers_killed_while_serving_are_respawned_without_failed_requests(
    tmp_path, gunicorn_server
):
    path = store_config(tmp_path, f"sqlite:///{tmp_path}/models.db")
    fit_model(path)
    url = gunicorn_server(path)
    wait_for_log(tmp_path / "gunicorn-0.log", "model cache now holds version 1")
    kills = 3
    with Load(url, params=SETOSA) as load:
        wait_for(lambda: load.count(200) >= 20, "the service serves")
        for _ in range(kills):
            kill_a_worker(path)
            after = time.monotonic()
            wait_for(lambda t=after: load.count(200, since=t) >= 20, "serving after the kill")
    load.figures(f"{kills} workers killed with SIGKILL")
    assert load.count("failed") <= kills, load.failures  # only the requests in flight
    assert load.count(503) == 0
    assert set(status for _, status in load.records) <= {200, "failed"}


# -- the model store: SQLite files ----------------------------------------------------------


def served_versions(url: str, tries: int = 12) -> set:
    """The model versions /alive reports over fresh connections (so both workers answer)."""
    versions = set()
    for _ in range(tries):
        answer = requests.get(url + "/alive", timeout=10)
        versions.add(((answer.json().get("model") or {}).get("metadata") or {}).get("version"))
    return versions


def test_a_replaced_sqlite_file_is_served_within_a_refresh_and_a_deleted_one_degrades(
    tmp_path, gunicorn_server
):
    store = tmp_path / "models.db"
    path = store_config(tmp_path, f"sqlite:///{store}")
    fit_model(path)
    # the replacement: a copy of the store holding one more model, version 2, active
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(store, other / "models.db")
    assert fit_model(store_config(other, f"sqlite:///{other / 'models.db'}")) == 2

    url = gunicorn_server(path)
    log = tmp_path / "gunicorn-0.log"
    wait_for_log(log, "model cache now holds version 1")
    with Load(url, params=SETOSA) as load:
        wait_for(lambda: load.count(200) >= 20, "the service serves")
        os.unlink(store)  # deleted: the workers keep serving the model they hold
        wait_for_log(log, "is gone (deleted or moved away)")
        gone = time.monotonic()
        wait_for(lambda: load.count(200, since=gone) >= 50, "serving after the deletion")
        assert served_versions(url) == {1}
        os.replace(other / "models.db", store)  # a new file with version 2 moved into place
        moved = time.monotonic()
        wait_for(lambda: served_versions(url) == {2}, "every worker serves version 2")
        seen = time.monotonic()
    load.figures("SQLite file deleted, then replaced", seen - moved)
    assert load.count("failed") == 0 and load.count(503) == 0, load.bodies_503[:3]
    text = log.read_text()
    assert text.count("is gone (deleted or moved away)") == 2, text  # once per worker
    assert text.count("was replaced; reading the new one") == 2, text


def test_deleting_the_active_version_needs_force_and_empties_every_worker(
    tmp_path, gunicorn_server
):
    path = store_config(tmp_path, f"sqlite:///{tmp_path}/models.db")
    fit_model(path)
    fit_model(path)
    url = gunicorn_server(path)
    wait_for_log(tmp_path / "gunicorn-0.log", "model cache now holds version 2")

    refused = pf("pf-admin", "delete", "2", config=path)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "model version 2 is the active model" in refused.stderr
    assert "pf-admin delete --force" in refused.stderr
    assert served_versions(url) == {2}

    assert pf("pf-admin", "delete", "2", "--force", config=path).returncode == 0

    def all_503():
        answers = [requests.get(url + "/predict", params=SETOSA, timeout=10) for _ in range(12)]
        return all(answer.status_code == 503 for answer in answers)

    wait_for(all_503, "every worker leaves the deleted version", timeout=20)
    alive = requests.get(url + "/alive", timeout=10)
    assert (
        alive.status_code == 503 and "no active model" in alive.json()["metadata"]["error_message"]
    )
    assert pf("pf-admin", "activate", "1", config=path).returncode == 0
    wait_for(lambda: served_versions(url) == {1}, "every worker serves version 1")


def pf(script: str, *args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name(script)), *args],
        env={**os.environ, "PIPEFORGE_CONFIG": str(config)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_delete_route_needs_force_for_the_active_version(tmp_path):
    from pipeforge.server import create_app

    delete = {
        "__factory__": "pipeforge.server.add_url_rule",
        "rule": "/delete",
        "view_func": "pipeforge.server.delete",
        "methods": ["POST"],
    }
    path = store_config(
        tmp_path,
        f"sqlite:///{tmp_path}/models.db",
        flask_add_url_rules=[delete],
        security={"unguarded": ["delete"]},
    )
    fit_model(path)
    fit_model(path)
    client = create_app(load_config([str(path)])).test_client()
    refused = client.post("/delete", json={"model_version": 2})
    assert refused.status_code == 409
    message = refused.json["metadata"]["error_message"]
    assert "model version 2 is the active model" in message and '"force": true' in message
    assert [m["version"] for m in client.get("/list").json["models"]] == [1, 2]
    assert client.post("/delete", json={"model_version": 1}).status_code == 200  # not active
    done = client.post("/delete", json={"model_version": 2, "force": True})
    assert done.status_code == 200 and done.json["model_version"] == 2
    assert client.get("/list").json["models"] == []


# -- the online store -----------------------------------------------------------------------


@pytest.mark.postgres
def test_the_online_store_on_postgres_answers_503_while_down_and_recovers(
    tmp_path, postgres_cluster, gunicorn_server
):
    store = {"__factory__": "pipeforge.online.SQLStore", "url": postgres_cluster.url}
    path = online_config(tmp_path, store)
    url = gunicorn_server(path)
    event = {"features": {"x": 1.0}}
    assert requests.post(url + "/api/predict", json=event, timeout=10).status_code == 200
    with Load(url, "/api/predict", body=event) as load:
        wait_for(lambda: load.count(200) >= 20, "the online service answers")
        postgres_cluster.stop()
        down = time.monotonic()
        wait_for(lambda: load.count(503, since=down) >= 20, "503s while PostgreSQL is down")
        postgres_cluster.start()
        back = time.monotonic()
        wait_for(lambda: load.answered(200, 40, since=back), "the online service answers again")
        first = min(m for m, status in load.records if status == 200 and m >= back)
    load.figures("online store (PostgreSQL) restart", first - back)
    assert load.count("failed") == 0, load.failures
    assert set(status for _, status in load.records) <= {200, 503}
    for body in load.bodies_503:
        message = json.loads(body)["metadata"]["error_message"]
        assert message.startswith("the online store cannot be reached right now")
        assert_no_store_words(body, str(postgres_cluster.port))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_redis(port: int, folder: Path) -> subprocess.Popen:
    """A Redis server with a password that keeps every write (as a deployment's would)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", "always", "--requirepass", PASSWORD, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return proc.poll() is not None and pytest.fail("redis-server exited")

    wait_for(up, "redis-server answers")
    return proc


def test_the_online_store_on_redis_hides_its_password_and_recovers(tmp_path, gunicorn_server):
    port = _free_port()
    redis_url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    store = {"__factory__": "pipeforge.online.RedisStore", "url": redis_url}
    path = online_config(tmp_path, store)
    redis = _start_redis(port, tmp_path)
    try:
        url = gunicorn_server(path)
        event = {"features": {"x": 1.0}}
        answer = requests.post(url + "/api/predict", json=event, timeout=10)
        assert answer.status_code == 200, answer.text
        with Load(url, "/api/predict", body=event) as load:
            wait_for(lambda: load.count(200) >= 20, "the online service answers", load=load)
            redis.kill()
            redis.wait(10)
            down = time.monotonic()
            wait_for(
                lambda: load.count(503, since=down) >= 20, "503s while Redis is down", load=load
            )
            redis = _start_redis(port, tmp_path)
            back = time.monotonic()
            wait_for(lambda: load.answered(200, 40, since=back), "answers again", load=load)
            first = min(m for m, status in load.records if status == 200 and m >= back)
    finally:
        redis.kill()
        redis.wait(10)
    load.figures("online store (Redis) restart", first - back)
    assert load.count("failed") == 0, load.failures
    for body in load.bodies_503:
        assert "the online store (Redis) cannot be reached right now" in body
        assert_no_store_words(body, str(port))
    log = (tmp_path / "gunicorn-0.log").read_text()
    assert PASSWORD not in log
    assert "the online store (Redis) cannot be used" in log


# -- secrets and driver text ----------------------------------------------------------------


def test_a_rest_store_password_reaches_neither_client_nor_log(tmp_path, caplog):
    from pipeforge.server import create_app

    rest = {
        "__factory__": "pipeforge.persistence.Rest",
        "url": f"http://reader:{PASSWORD}@127.0.0.1:{_free_port()}/models/m-{{version}}",
        "timeout": 5,
    }
    cached = {
        "__factory__": "pipeforge.persistence.CachedUpdatePersister",
        "impl": rest,
        "update_cache_rrule": REFRESH,
    }
    caplog.set_level(logging.DEBUG)
    for persister, expected in (
        (cached, "the model store cannot be read right now"),
        (rest, "the model could not be read; see the server log"),
    ):
        path = iris_config(tmp_path, model_persister=persister, flask_add_url_rules=None)
        app = create_app(load_config([str(path)]), start_background=True)
        try:
            client = app.test_client()
            for route in ("/alive", "/predict"):
                answer = client.get(route, query_string=SETOSA)
                assert answer.status_code in (500, 503), answer.text
                assert PASSWORD not in answer.text and "reader:" not in answer.text
            assert expected in client.get("/alive").json["metadata"]["error_message"]
        finally:
            app.extensions["pipeforge"].stop()
    assert "reader:***@127.0.0.1" in caplog.text  # the log names the store ...
    assert PASSWORD not in caplog.text  # ... without its password


def test_a_bad_config_under_four_workers_is_said_once(tmp_path, gunicorn_server):
    path = iris_config(tmp_path, model={"__factory__": "sklearn.nope.Missing"})
    with pytest.raises(RuntimeError) as info:
        gunicorn_server(path, workers=4)
    log = str(info.value)
    assert "gunicorn exited with status 4" in log
    lines = [line for line in log.splitlines() if "pipeforge cannot start" in line]
    assert len(lines) == 1, log
    assert "config.py: model.__factory__" in lines[0] and "sklearn.nope.Missing" in lines[0]
    assert "Traceback" not in log and "HaltServer" not in log


def test_a_bad_config_with_preload_is_said_once(tmp_path):
    path = iris_config(tmp_path, model={"__factory__": "sklearn.nope.Missing"})
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-w", "4", "--preload", "-b", "127.0.0.1:0",
         "--no-control-socket", "pipeforge.wsgi:app"],
        env={**os.environ, "PIPEFORGE_CONFIG": str(path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 4
    lines = [line for line in done.stderr.splitlines() if "pipeforge cannot start" in line]
    assert len(lines) == 1 and "sklearn.nope.Missing" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_urls_show_no_password_in_reprs_and_errors():
    from pipeforge.errors import ConfigError
    from pipeforge.online import RedisStore, SQLStore
    from pipeforge.persistence import CachedUpdatePersister, Database, Rest
    from pipeforge.sql import create_engine

    shown = [
        repr(CachedUpdatePersister(Database(f"postgresql+psycopg://pf:{PASSWORD}@db/models"))),
        repr(Rest(f"https://reader:{PASSWORD}@artifacts/models/m-{{version}}")),
        repr(RedisStore(f"redis://:{PASSWORD}@cache:6379/0")),
        repr(SQLStore(f"postgresql+psycopg://pf:{PASSWORD}@db/online")),
    ]
    for text in shown:
        assert PASSWORD not in text and ":***@" in text, text
    with pytest.raises(ConfigError) as info:
        create_engine(f"nosuchdb://pf:{PASSWORD}@db/models")
    assert PASSWORD not in str(info.value) and "nosuchdb://pf:***@db/models" in str(info.value)


def test_a_wrong_store_parameter_still_stops_the_start(tmp_path):
    from pipeforge.errors import ConfigError
    from pipeforge.persistence import CachedUpdatePersister, Database

    cache = CachedUpdatePersister(Database(f"sqlite:///{tmp_path}/m.db", chunk_size=-1))
    with pytest.raises(ConfigError, match="parameter 'chunk_size' of Database"):
        cache.start()  # a config error is no outage to wait out
