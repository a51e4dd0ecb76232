"""Drift (docs/releasing.md, "Drift"): training summaries, PSI, /alive, /metrics, pf-drift, online.

The served path is real: gunicorn with two workers, the prediction log in
the model store's database (SQLite and PostgreSQL), the model fitted by
``pf-fit`` and by the server's ``/fit`` job.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time

import pytest
import requests
import yaml

from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from tests.fixtures.gunicorn import IRIS_DATA, IRIS_FEATURES, ROOT, iris_config
from tests.fixtures.online import online_config

DOC = (ROOT / "docs" / "releasing.md").read_text()
#: requests of 10 samples each compared by the drift window
BATCHES = 30
DRIFT = {"threshold": 0.2, "window": BATCHES, "min_rows": 100, "every": 0}


def _drift_section() -> str:
    return DOC.split("\n## Drift\n", 1)[1].split("\n## ", 1)[0]


def _doc_console() -> list[str]:
    block = re.search(r"```console\n(.*?)```", _drift_section(), re.S).group(1)
    return [line.removeprefix("  ") for line in block.splitlines() if line.strip()]


def _iris_rows() -> list[dict]:
    rows = []
    for line in IRIS_DATA.read_text().splitlines():
        parts = line.split(",")
        if len(parts) == 5:
            rows.append(dict(zip(IRIS_FEATURES, map(float, parts[:4]), strict=True)))
    return rows


def _wait(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(url: str) -> dict:
    response = requests.get(url + "/alive", timeout=10)
    assert response.status_code == 200, response.text  # a drifted model still serves
    return response.json()


def _served_version(alive: dict, version: int) -> dict | None:
    for entry in alive["drift"]["versions"]:
        if entry["version"] == version and entry["rows"] >= BATCHES * 10 and "note" not in entry:
            return entry
    return None


def _send(url: str, rows: list[dict]) -> None:
    for start in range(0, len(rows), 10):
        response = requests.post(url + "/predict", json=rows[start : start + 10], timeout=10)
        assert response.status_code == 200, response.text


def _pf(main, argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/models.db"
    return request.getfixturevalue("postgres_database_url")


def test_drift_of_a_shifted_stream_is_flagged_and_an_unshifted_one_is_not(
    tmp_path, store_url, gunicorn_server, monkeypatch, capsys
):
    from pipeforge.cli.drift import drift_main
    from pipeforge.cli.listing import list_main
    from pipeforge.cli.scripts import fit_main

    config_path = iris_config(
        tmp_path,
        drift=DRIFT,
        model_persister={
            "__factory__": "pipeforge.persistence.CachedUpdatePersister",
            "update_cache_rrule": {"freq": "SECONDLY", "interval": 1},
            "impl": {"__factory__": "pipeforge.persistence.Database", "url": store_url},
        },
        predict_service={
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [[name, "float"] for name in IRIS_FEATURES],
            "prediction_log": {"flush_seconds": 0.05},
        },
    )
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config_path))
    monkeypatch.chdir(tmp_path)
    assert fit_main([]) == 0
    capsys.readouterr()

    # the version keeps a summary of its training inputs; pf-list says so and hides the numbers
    code, out = _pf(list_main, ["--json"], capsys)
    summary = json.loads(out)["models"][0]["training_summary"]
    # (the iris loader gives an array: columns are matched by position, named by the service)
    assert code == 0 and summary["rows"] == 150 and summary["by"] == "position"
    assert [f["kind"] for f in summary["features"]] == ["numeric"] * 4
    petal = summary["features"][2]
    assert petal["min"] == 1.0 and petal["max"] == 6.9 and abs(sum(petal["shares"]) - 1) < 1e-3
    code, out = _pf(list_main, [], capsys)
    assert "4 features summarized for drift" in out and '"edges"' not in out

    url = gunicorn_server(config_path, workers=2)
    rows = _iris_rows()
    rng = random.Random(7)
    same = [dict(rng.choice(rows)) for _ in range(BATCHES * 10)]
    _send(url, same)
    entry = _wait(lambda: _served_version(_alive(url), 1), "the unshifted requests in the log")
    alive = _alive(url)
    assert alive["drift"]["drifted"] is False and entry["drifted"] is False
    assert entry["score"] < DRIFT["threshold"] and entry["drifted_features"] == {}
    assert "training_summary" not in alive["model"]["metadata"]
    code, out = _pf(drift_main, ["--json", "--check"], capsys)
    report = json.loads(out)
    assert code == 0 and report["drifted"] is False
    (version,) = report["versions"]
    assert version["rows"] == BATCHES * 10
    assert all(f["psi"] < DRIFT["threshold"] and f["outside"] == 0 for f in version["features"])

    shifted = [{**row, "petal length": row["petal length"] + 3.0} for row in same]
    _send(url, shifted)

    def flagged():
        alive = _alive(url)
        return alive if alive["drift"]["drifted"] else None

    alive = _wait(flagged, "the drift flag in /alive")
    (entry,) = alive["drift"]["versions"]
    assert set(entry["drifted_features"]) == {"petal length"}
    assert entry["drifted_features"]["petal length"]["psi"] > DRIFT["threshold"]
    assert entry["drifted_features"]["petal length"]["outside"] > 0.05  # the default max_outside
    metrics = requests.get(url + "/metrics", timeout=10).text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("pipeforge_drift_psi{") and 'feature="petal length"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) > DRIFT["threshold"]
    assert 'pipeforge_drift_detected{model_version="1",service="/predict"} 1.0' in metrics

    code, out = _pf(drift_main, ["--check"], capsys)
    assert code == 1
    assert out.splitlines()[0] == _doc_console()[1]  # the page shows the same report
    assert "/predict  version 1  (300 samples)  DRIFTED" in out
    marked = [line.split()[1:3] for line in out.splitlines() if line.startswith("  * ")]
    assert marked == [["petal", "length"]]
    # a stricter threshold from the command line flags the unshifted features too
    code, out = _pf(drift_main, ["--json", "--threshold", "0", "--window", "30"], capsys)
    assert all(f["drifted"] for f in json.loads(out)["versions"][0]["features"])

    # the server's /fit job stores a summary with the version it writes too
    assert requests.post(url + "/fit", json={}, timeout=10).status_code == 200
    models = _wait(
        lambda: [m for m in requests.get(url + "/list", timeout=10).json()["models"]][1:],
        "the version the /fit job writes",
    )
    assert models[0]["version"] == 2 and models[0]["training_summary"]["rows"] == 150


def test_the_pages_drift_entry_and_pf_drift_output_are_what_the_code_takes_and_prints():
    from pipeforge.cli.drift import _print
    from pipeforge.release.drift import DriftSettings, read_settings

    block = re.search(r"```yaml\n(.*?)```", _drift_section(), re.S).group(1)
    entries = yaml.safe_load(block)
    assert read_settings(entries) == DriftSettings(0.2, 0.05, 1000, 200, 30.0)
    assert entries["predict_service"]["prediction_log"] is True
    lines = _doc_console()
    assert lines[0] == "$ pf-drift"
    names = ["sepal length", "sepal width", "petal length", "petal width"]
    features = []
    for line in lines[4:]:
        mark, rest = line[:4], line[4:]
        name = next(n for n in names if rest.startswith(n))
        psi, outside = rest[len(name) :].split()[:2]
        features.append(
            {
                "name": name,
                "psi": float(psi),
                "outside": float(outside) / 100,
                "drifted": "*" in mark,
            }
        )
    report = {
        "threshold": 0.2,
        "max_outside": 0.05,
        "versions": [
            {
                "service": "/predict",
                "version": 3,
                "rows": 1000,
                "drifted": True,
                "features": features,
            }
        ],
    }
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _print(report)
    assert printed.getvalue().splitlines() == lines[1:]


def test_pf_drift_says_when_a_version_has_no_summary_or_too_few_samples(tmp_path, capsys):
    from pipeforge.release.drift import DriftSettings, drift_report

    rows = [
        {"service": "/predict", "version": 1, "inputs": [{"a": 1.0}]},
        {"service": "/predict", "version": 2, "inputs": json.dumps([{"a": 1.0}, {"a": 2.0}])},
    ]
    summary = {"rows": 2, "by": "name", "features": [{"name": "a", "kind": "numeric"}]}
    metadata = {1: {"version": 1}, 2: {"version": 2, "training_summary": summary}}
    report = drift_report(rows, metadata.get, DriftSettings(min_rows=5))
    notes = [v["note"] for v in report["versions"]]
    assert notes == [
        "no training summary (fitted before pipeforge stored them)",
        "2 logged samples; drift needs at least 5",
    ]
    assert report["drifted"] is False


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"threshold": "high"}, "drift.threshold: must be a number >= 0; got 'high' instead"),
        ({"windw": 10}, "drift.windw: unknown key"),
        ({"max_outside": 2}, "drift.max_outside: must be a share between 0 and 1; got 2"),
    ],
)
def test_a_wrong_drift_entry_stops_the_server_at_start(tmp_path, entry, message):
    from pipeforge.server import create_app

    config = load_config([str(iris_config(tmp_path, drift=entry))])
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert message in str(caught.value)


def _read_events(response, kinds: list[tuple[str, dict]]) -> None:
    """Collect ``(event, data)`` of an SSE response until a ``drift`` event or its end."""
    event = None
    for raw in response.iter_lines(decode_unicode=True):
        if raw.startswith("event:"):
            event = raw.partition(":")[2].strip()
        elif raw.startswith("data:") and event is not None:
            kinds.append((event, json.loads(raw.partition(":")[2])))
            if event == "drift":
                return
            event = None
        elif not raw:
            event = None


def test_an_online_model_whose_error_rises_sends_a_drift_event(tmp_path, gunicorn_server):
    config = online_config(
        tmp_path,
        {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/online.db"},
        online={"allow_events": True, "stream_seconds": 45, "drift_detector": "adwin"},
        security={"unguarded": ["online.events"]},
    )
    # one process (its detector sees every learn), with threads: the stream holds one of them
    url = gunicorn_server(config, workers=1, args=["--worker-class", "gthread", "--threads", "4"])
    kinds: list[tuple[str, dict]] = []
    with requests.get(url + "/api/stream/events", stream=True, timeout=90) as stream:
        assert stream.status_code == 200, stream.text
        reader = threading.Thread(target=_read_events, args=(stream, kinds), daemon=True)
        reader.start()
        rng = random.Random(3)
        with requests.Session() as session:
            for number in range(1200):
                a = rng.uniform(-1.0, 1.0)
                truth = a > 0 if number < 600 else a <= 0  # the concept flips halfway
                response = session.post(
                    url + "/api/learn",
                    json={"model": "spam", "features": {"a": a}, "ground_truth": truth},
                    timeout=10,
                )
                assert response.status_code == 201, response.text
        reader.join(60)  # it returns at the drift event, or when the server ends the stream
        assert not reader.is_alive()
    learns = [data for kind, data in kinds if kind == "learn"]
    drift = [data for kind, data in kinds if kind == "drift"]
    assert len(learns) > 600 and len(drift) == 1, kinds[-3:]
    event = drift[0]
    assert event["model"] == "spam" and event["detector"] == "ADWIN"
    assert event["error_now"] > event["error_before"] + 0.2
    # before the flip the model only got better: no drift among the first 600 learns' events
    assert kinds.index(("drift", event)) > 600


def test_a_wrong_drift_detector_is_a_config_error(tmp_path):
    from pipeforge.server import create_app

    config = load_config(
        [str(online_config(tmp_path, None, online={"drift_detector": "kswin"}))],
        __mode__="predict",
    )
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert "online.drift_detector: must be one of adwin, page_hinkley, none; got 'kswin'" in str(
        caught.value
    )
