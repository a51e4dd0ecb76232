"""Aliases and canary traffic served by a real ``gunicorn -w 2``, on SQLite and PostgreSQL.

The store holds three versions that always answer their own number, so an
answer says which version gave it (and its ``metadata`` says so too). Every
request in these tests goes over HTTP; the store is changed with the
installed ``pf-admin`` and with the guarded ``/traffic`` and ``/alias``
routes, the way an operator would.
"""

from __future__ import annotations

import os
import pprint
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from sklearn.dummy import DummyClassifier

from pipeforge.persistence import Database
from pipeforge.release import aliases as release

GUARD = "pipeforge.guards.require_token"
BIN = Path(sys.executable).parent


def constant(value: int) -> DummyClassifier:
    return DummyClassifier(strategy="constant", constant=value).fit([[0.0]] * 3, [1, 2, 3])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database_url")
    return f"sqlite:///{tmp_path}/models.db"


@pytest.fixture
def served(url, tmp_path, gunicorn_server):
    """``(base URL, config path, token)``: versions 1, 2, 3; champion 1, challenger 2."""
    store = Database(url=url)
    for value in (1, 2, 3):
        store.write(constant(value))
    store.activate(1)
    release.set_alias(store, "champion", 1)
    release.set_alias(store, "challenger", 2)
    token = secrets.token_urlsafe(24)
    config = {
        "service_metadata": {"service_name": "canary", "service_version": "1"},
        "model_persister": {
            "__factory__": "pipeforge.persistence.CachedUpdatePersister",
            "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
            "impl": {"__factory__": "pipeforge.persistence.Database", "url": url},
        },
        "predict_service": {
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [["x", "float"]],
            "traffic": {"champion": 80, "challenger": 20},
            "sticky_key": "X-User",
            "alias_from_request": True,
        },
        "flask_add_url_rules": [
            {
                "__factory__": "pipeforge.server.add_url_rule",
                "rule": rule,
                "view_func": f"pipeforge.server.{view}",
                "methods": ["POST"],
            }
            for rule, view in (("/traffic", "set_traffic"), ("/alias", "move_alias"))
        ],
        "traffic_decorators": [GUARD],
        "alias_decorators": [GUARD],
    }
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat(config, sort_dicts=False))
    base = gunicorn_server(path, env={"PIPEFORGE_TOKENS": token})
    return base, path, token


def _admin(config: Path, *args: str) -> str:
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config)}
    done = subprocess.run(
        [str(BIN / "pf-admin"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ask(session: requests.Session, base: str, **headers: str) -> dict:
    response = session.get(base + "/predict", params={"x": 1.0}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_canary_split_holds_its_weights_and_sticks_per_caller(served):
    base, _, _ = served
    session = requests.Session()
    arms = Counter()
    for _ in range(2000):
        body = _ask(session, base)
        arms[body["metadata"]["model_alias"]] += 1
        assert body["result"] == {"champion": 1, "challenger": 2}[body["metadata"]["model_alias"]]
    assert set(arms) == {"champion", "challenger"}
    assert abs(arms["challenger"] / 2000 - 0.20) < 0.035, arms
    # the same caller always meets the same version, whichever worker answers
    per_caller = {}
    for round_ in range(3):
        for caller in range(200):
            version = _ask(session, base, **{"X-User": f"user-{caller}"})["metadata"]
            seen = per_caller.setdefault(caller, version["model_version"])
            assert seen == version["model_version"], (caller, round_)
    share = Counter(per_caller.values())[2] / 200
    assert 0.1 < share < 0.3, per_caller
    # a request may ask for an alias itself; one no version carries is a 404 with the error body
    assert _ask(session, base, **{"X-Model-Alias": "challenger"})["result"] == 2
    missing = session.get(base + "/predict?x=1", headers={"X-Model-Alias": "ghost"}, timeout=30)
    assert missing.status_code == 404
    assert "no version carries the alias 'ghost'" in missing.json()["metadata"]["error_message"]
    # the request id is the caller's, or one made up and returned
    echoed = session.get(base + "/predict?x=1", headers={"X-Request-ID": "abc-1"}, timeout=30)
    assert echoed.headers["X-Request-ID"] == "abc-1"
    made = session.get(base + "/predict?x=1", timeout=30).headers["X-Request-ID"]
    assert len(made) == 32 and made != "abc-1"


class Load:
    """Threads asking ``/predict`` until stopped; every answer kept (status, alias, version)."""

    def __init__(self, base: str, headers: dict[str, str] | None = None, threads: int = 4):
        self.base, self.headers = base, headers or {}
        self.answers: list[tuple[int, str | None, int | None]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            response = session.get(
                self.base + "/predict", params={"x": 1.0}, headers=self.headers, timeout=30
            )
            metadata = response.json().get("metadata", {})
            with self.lock:
                self.answers.append(
                    (
                        response.status_code,
                        metadata.get("model_alias"),
                        metadata.get("model_version"),
                    )
                )

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def wait_for(self, ok, run: int = 300, timeout: float = 60.0) -> None:
        """Until the newest ``run`` answers all pass ``ok`` (every worker follows), or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                start = len(self.answers)
            while time.monotonic() < deadline:
                with self.lock:
                    fresh = self.answers[start:]
                if any(not ok(a) for a in fresh):
                    break
                if len(fresh) >= run:
                    return
                time.sleep(0.02)
        raise AssertionError(f"not followed within {timeout} s: {Counter(self.answers)}")


def test_alias_moves_and_traffic_changes_are_followed_without_a_failed_request(served):
    base, config, token = served
    with Load(base, {"X-Model-Alias": "champion"}) as load:
        load.wait_for(lambda a: a[2] == 1)
        assert "Alias champion -> version 3" in _admin(config, "alias", "champion", "3")
        load.wait_for(lambda a: a[2] == 3)
    assert {status for status, _, _ in load.answers} == {200}, Counter(load.answers)

    with Load(base) as load:  # the canary: 80/20 in the config
        _admin(config, "traffic", "/predict", "champion=0", "challenger=100")
        load.wait_for(lambda a: a[1] == "challenger")
        auth = {"Authorization": f"Bearer {token}"}
        refused = requests.post(
            base + "/traffic", json={"service": "/predict", "traffic": {"champion": 1}}, timeout=30
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["metadata"]["status"] == "ERROR"
        moved = requests.post(
            base + "/traffic",
            json={"service": "/predict", "traffic": {"champion": 100, "challenger": 0}},
            headers=auth,
            timeout=30,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["traffic"] == {"challenger": 0.0, "champion": 100.0}
        load.wait_for(lambda a: a[1] == "champion")
        # the alias route moves champion back to version 1 while the load goes on
        answer = requests.post(
            base + "/alias",
            json={"alias": "champion", "model_version": 1},
            headers=auth,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["previous"] == 3 and answer.json()["model_version"] == 1
        load.wait_for(lambda a: a[2] == 1)
        bad = requests.post(
            base + "/alias",
            json={"alias": "champion", "model_version": 9},
            headers=auth,
            timeout=30,
        )
        assert bad.status_code == 404 and "no model with version 9" in bad.text
        form = requests.post(
            base + "/alias", data={"alias": "champion", "model_version": "2"}, headers=auth
        )
        assert form.status_code == 415
    assert {status for status, _, _ in load.answers} == {200}, Counter(load.answers)
    listed = requests.get(base + "/list", timeout=30).json()
    assert listed["aliases"] == {"active": 1, "challenger": 2, "champion": 1}
    assert listed["traffic"] == {"/predict": {"challenger": 0.0, "champion": 100.0}}
