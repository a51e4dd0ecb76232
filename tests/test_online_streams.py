"""Event streams never starve a real server: refused on gunicorn's sync workers, capped per process
on threads (gunicorn's and granian's).

Each test serves the iris model (``/predict``) and the online models (``/api/*``) from one config,
opens streams, then asks ``/predict`` and ``/api/predict`` for answers.
"""

from __future__ import annotations

import pprint
from collections.abc import Iterator

import pytest
import requests

from pipeforge import training
from pipeforge.config import load_config
from tests.fixtures.gunicorn import iris_config_dict
from tests.fixtures.online import MODELS

pytestmark = pytest.mark.slow

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}


def serving_config(tmp_path, **online):
    """A config serving the fitted iris model and the online models (SQLite store)."""
    config = iris_config_dict(tmp_path, flask_add_url_rules=None, security=None)
    config["online_models"] = MODELS
    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/online.db"}
    config["online"] = {"store": store, **online}
    path = tmp_path / "config.py"
    path.write_text(pprint.pformat(config, sort_dicts=False))
    loaded = load_config([str(path)])
    training.fit(loaded["dataset_loader_train"], loaded["model"], loaded["model_persister"])
    return path


def everything_answers(url: str, tries: int = 8) -> None:
    """``/predict``, ``/api/predict`` and ``/alive`` answer, on fresh connections (any worker)."""
    for _ in range(tries):
        with requests.Session() as session:
            response = session.get(url + "/predict", params=SETOSA, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["result"] == "Iris-setosa"
            response = session.post(url + "/api/predict", json={"features": {"a": 1.0}}, timeout=10)
            assert response.status_code == 200 and response.json()["model"] == "reg"
            assert session.get(url + "/alive", timeout=10).status_code == 200


def open_stream(url: str) -> requests.Response:
    return requests.get(url + "/api/stream/metrics", stream=True, timeout=10)


def error_message(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    metadata = response.json()["metadata"]
    assert metadata["status"] == "ERROR"
    return metadata["error_message"]


def lines_of(response: requests.Response) -> Iterator[str]:
    """One reader of the stream's lines (a second ``iter_lines`` would lose what the first read)."""
    return response.iter_lines(decode_unicode=True)


def first_lines(lines_iter: Iterator[str], until: str) -> list[str]:
    """The next lines up to one starting with ``until`` (the read timeout is the deadline)."""
    lines = []
    for line in lines_iter:
        lines.append(line)
        if line.startswith(until):
            return lines
    raise AssertionError(f"the stream ended before {until!r}: {lines}")


def test_sync_workers_refuse_streams_and_keep_answering(tmp_path, gunicorn_server):
    url = gunicorn_server(serving_config(tmp_path), workers=2)  # gunicorn's default: sync
    streams = [open_stream(url) for _ in range(2)]
    try:
        for stream in streams:
            message = error_message(stream, 503)
            assert "--worker-class gthread --threads" in message
            assert "docs/online-learning.md" in message
        everything_answers(url)
    finally:
        for stream in streams:
            stream.close()


def test_threaded_workers_serve_streams_and_keep_answering(tmp_path, wsgi_server):
    url = wsgi_server(serving_config(tmp_path, stream_seconds=60), workers=2, threads=4)
    streams = [open_stream(url) for _ in range(2)]
    readers = [lines_of(stream) for stream in streams]
    try:
        for stream, reader in zip(streams, readers, strict=True):
            assert stream.status_code == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert first_lines(reader, "retry:") == ["retry: 1000"]
        everything_answers(url)
        response = requests.post(
            url + "/api/learn", json={"features": {"a": 1.0}, "ground_truth": 2.0}, timeout=10
        )
        assert response.status_code == 201
        for reader in readers:  # both still listen, whichever worker holds them
            lines = first_lines(reader, "data:")
            assert "event: metrics" in lines and '"model": "reg"' in lines[-1]
    finally:
        for stream in streams:
            stream.close()


def test_streams_beyond_the_cap_of_a_process_are_refused(tmp_path, wsgi_server):
    config = serving_config(tmp_path, stream_seconds=2, max_streams=1)
    url = wsgi_server(config, workers=1, threads=4)
    first = open_stream(url)
    try:
        assert first.status_code == 200
        second = open_stream(url)
        message = error_message(second, 503)
        assert "1 event streams are open in this process already (online.max_streams)" in message
        assert int(second.headers["Retry-After"]) >= 2
        everything_answers(url, tries=3)
        reader = lines_of(first)
        assert first_lines(reader, "retry:") == ["retry: 1000"]
        for _ in reader:  # the first stream ends after stream_seconds ...
            pass
    finally:
        first.close()
    # ... and its place is free again once the server has closed it
    for _ in range(50):
        third = open_stream(url)
        third.close()
        if third.status_code == 200:
            break
        assert "online.max_streams" in error_message(third, 503)
    assert third.status_code == 200
