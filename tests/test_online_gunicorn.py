"""Many server processes on one store: ``gunicorn -w 4`` on SQLite, and two gunicorn masters
(``-w 4`` and ``-w 2``) sharing PostgreSQL or Redis; the same with granian (``pf-serve``). Every sample is learnt exactly once, whichever worker predicted
it and however many times its learn is sent at once; every worker serves the same model; an
SSE listener on one worker hears the events of all of them."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fixtures.online import online_config

N = 60


def _listen(url: str, got: list, ready: threading.Event, stop: threading.Event) -> None:
    """Collect (event, data) from one SSE response until ``stop`` (or the server goes)."""
    try:
        with requests.get(url + "/api/stream/events", stream=True, timeout=60) as response:
            ready.set()
            event = None
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    got.append((event, json.loads(line.split(":", 1)[1])))
                if stop.is_set():
                    return
    except requests.RequestException:
        if not stop.is_set():
            raise


def _post(url: str, path: str, body: dict) -> requests.Response:
    return requests.post(url + path, json=body, timeout=60)


@pytest.mark.slow
def test_two_masters_learn_each_sample_exactly_once(tmp_path, online_store, wsgi_server):
    path = online_config(
        tmp_path,
        online_store,
        online={"stream_seconds": 25, "allow_events": True},
        security={"unguarded": ["online.events"]},
    )
    # threads: a sync worker refuses event streams (each would hold the whole worker)
    args = ["--preload", "--graceful-timeout", "1"]
    # Two masters share PostgreSQL or Redis (as two hosts would); SQLite lives on one host,
    # where one master's four workers are already four processes.
    workers = [4] if "sqlite" in json.dumps(online_store) else [4, 2]
    with ThreadPoolExecutor(2) as pool:
        masters = list(
            pool.map(lambda w: wsgi_server(path, workers=w, threads=4, gunicorn_args=args), workers)
        )
    first, second = masters[0], masters[-1]
    masters = [first, second]  # the same one twice on SQLite

    events: list = []
    ready, stop = threading.Event(), threading.Event()
    listener = threading.Thread(target=_listen, args=(first, events, ready, stop), daemon=True)
    listener.start()
    assert ready.wait(30)

    rows = [({"a": i / 10, "b": (i % 7) / 3}, 2.0 * i / 10 - (i % 7) / 3) for i in range(N)]
    with ThreadPoolExecutor(12) as pool:
        predicted = list(
            pool.map(
                lambda i: _post(
                    masters[i % 2], "/api/predict", {"features": rows[i][0], "id": f"s{i}"}
                ),
                range(N),
            )
        )
        assert [r.status_code for r in predicted] == [201] * N
        # every learn sent twice at once, to both masters: one learns, the other is told it was learnt
        learns = [(masters[(i + k) % 2], i) for i in range(N) for k in (0, 1)]
        answers = list(
            pool.map(
                lambda job: _post(
                    job[0], "/api/learn", {"id": f"s{job[1]}", "ground_truth": rows[job[1]][1]}
                ),
                learns,
            )
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * N + [404] * N, [
        r.text for r in answers if r.status_code not in (201, 404)
    ]
    for response in answers:
        if response.status_code == 404:
            assert response.json()["metadata"]["status"] == "ERROR"

    for url in masters:
        info = requests.get(url + "/api/models", timeout=30).json()["info"]["reg"]
        assert info["n_learnt"] == N and info["n_scored"] == N
    metrics = {json.dumps(requests.get(url + "/api/metrics", timeout=30).json()) for url in masters}
    assert len(metrics) == 1
    # every worker serves the same model, caught up from the shared log
    x = {"a": 0.5, "b": 1.0}
    predictions = {
        requests.post(url + "/api/predict", json={"features": x}, timeout=30).json()["prediction"]
        for url in masters
        for _ in range(6)
    }
    assert len(predictions) == 1

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kinds = [kind for kind, _ in events]
        if kinds.count("predict") >= N + 12 and kinds.count("learn") >= N:
            break
        time.sleep(0.2)
    stop.set()
    kinds = [kind for kind, _ in events]
    assert kinds.count("learn") == N  # from all six workers, though the listener is on one
    assert kinds.count("predict") == N + 12
    learnt_ids = sorted(data["features"]["a"] for kind, data in events if kind == "learn")
    assert learnt_ids == sorted(row[0]["a"] for row in rows)

    deadline = time.monotonic() + 15  # each process writes its call counts once a second
    while True:
        stats = requests.get(first + "/api/stats", timeout=30).json()
        if stats["learn"]["n_calls"] == N and stats["predict"]["n_calls"] == N + 12:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)
