"""Fuzzing every route of the iris and online examples, each served by a real ``gunicorn -w 2``.

Three services: examples/iris (``config.yaml``, a model fitted by ``pf-fit``),
its versioned pipelines (``pipelines.yaml``, trained by ``pf-pipeline run
train_iris --save``) and examples/online. Every route of the security table
(``pipeforge.guards.GUARDED_ROUTES``) that the example has is switched on
behind the token guard, so the fuzzing meets them with and without the token.

The routes are the server's own: every operation of its ``/openapi.json``
plus every rule of the Flask app's URL map that OpenAPI leaves out (HEAD,
OPTIONS, the dashboard's and the docs' files, the pipelines' routes), so a
new route is fuzzed without editing this file. For each route Hypothesis
draws requests (tests/fuzz_requests.py) with a fixed seed and a bounded
number of examples, and every answer must keep four properties:

- never a 5xx, but for the 503s that say so by design (:data:`BY_DESIGN_503`);
- every 4xx carries the JSON error body (``metadata.status == "ERROR"``,
  ``error_code``, ``error_message``), every JSON answer is strict JSON;
- no worker dies: the gunicorn master's children keep their pids;
- a 4xx changes nothing stored: the model store's versions and active version
  (``GET /list``), the op store's versions, the online store's models, their
  counters and metrics (``GET /api/models``, ``GET /api/metrics``).

Problems are collected per service (the request, the answer and the server log
written meanwhile) and the test fails with all of them at once; a table of
requests per route and status class is printed (``pytest -s``). Requests that
would only remove what the example serves (deleting an online model it
serves, a forced delete of the active model) are not drawn: they may change
the store and would leave the other routes nothing to answer with.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pipeforge.guards import GUARDED_ROUTES
from tests.fixtures.gunicorn import ROOT, _wait_for_url, stop_process
from tests.fuzz_http import Answer, FuzzRequest, Route, all_routes, port_of, problems, send
from tests.fuzz_requests import Example, known_bad_requests, odd_requests, requests_for

#: examples drawn per route, by kind of route (all fixed: a run is repeatable)
EXAMPLES = {"body": 40, "plain": 12, "head_options": 3, "stream": 4, "odd": 60}
FUZZ = settings(
    derandomize=True,  # a fixed seed: the same requests on every run
    database=None,  # no example database written in CI
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)
#: 503s that are answers, not faults: (path pattern, why)
BY_DESIGN_503 = (
    (r"/api/stream/", "event streams refused on sync workers (docs/online-learning.md)"),
    (r"/health_check$", "a pipeline that cannot load is not healthy"),
)
GUARD = "pipeforge.guards.require_token"
IRIS_FEATURES = ("sepal length", "sepal width", "petal length", "petal width")
#: the columns of examples/online's data (scikit-learn's diabetes, see its make_data.py)
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
_DONE = {"finished", "error", "done", "failed"}


@dataclass
class Served:
    """One example served by gunicorn, with what the fuzzing needs to know about it."""

    name: str
    url: str
    proc: subprocess.Popen
    log: Path
    config: Path
    token: str
    snapshot: Callable[[], object] = lambda: None
    example: Example = field(default_factory=Example)
    counts: defaultdict = field(default_factory=lambda: defaultdict(Counter))
    found: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # the writes answered 2xx
    seconds: Counter = field(default_factory=Counter)

    def workers(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.proc.pid).children()}

    def log_since(self, offset: int) -> str:
        with open(self.log, "rb") as file:
            file.seek(offset)
            return file.read().decode("utf-8", "replace")


# -- the services ----------------------------------------------------------------------


def protocol_tensors(features: tuple[str, ...]) -> st.SearchStrategy[list[dict]]:
    """The ``inputs`` of an inference protocol request: one FP64 tensor per feature, 1-3 rows."""

    def tensors(rows: int) -> st.SearchStrategy[list[dict]]:
        column = st.lists(st.floats(-3, 300), min_size=rows, max_size=rows)
        return st.tuples(*(column for _ in features)).map(
            lambda columns: [
                {"name": name, "shape": [rows], "datatype": "FP64", "data": list(values)}
                for name, values in zip(features, columns, strict=True)
            ]
        )

    return st.integers(1, 3).flatmap(tensors)


def switch_on_guarded(entries: dict) -> dict:
    """``entries`` with every route of the security table that they can serve on, token-guarded."""
    needs = {"online": "online_models", "pipelines_admin": "pipelines"}
    needs["feedback"] = "predict_service"  # with a prediction log to take the feedback
    for route in GUARDED_ROUTES:
        if route.switch == "flask_add_url_rules":
            if "model_persister" not in entries:
                continue
            rule = {
                "__factory__": "pipeforge.server.add_url_rule",
                "rule": route.routes.split()[1],
                "view_func": f"pipeforge.server.{route.name}",
                "methods": ["POST"],
            }
            entries.setdefault("flask_add_url_rules", []).append(rule)
        else:
            section, key = route.switch.split(".")
            assert section in needs, f"teach the fuzz suite to switch on {route.switch}"
            if needs[section] not in entries:
                continue
            entries.setdefault(section, {})[key] = True
            if section == "feedback":
                entries["predict_service"].setdefault("prediction_log", True)
        entries[route.guard_list] = [GUARD]
    return entries


def _edit_yaml(path: Path, **changes) -> None:
    entries = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        entries.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(switch_on_guarded(entries), sort_keys=False))


def _copy_example(name: str, folder: Path) -> Path:
    target = folder / name
    ignore = shutil.ignore_patterns("*.db", "*.csv")
    shutil.copytree(ROOT / "examples" / name, target, ignore=ignore)
    return target


def _env(config: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEFORGE_", "PALLADIUM_"))}
    env.update(PIPEFORGE_CONFIG=str(config), PIPEFORGE_TOKENS=token)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(command: list[str], config: Path, token: str) -> None:
    result = subprocess.run(
        command,
        cwd=config.parent,
        env=_env(config, token),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def _serve(name: str, config: Path, token: str) -> Served:
    log = config.parent / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:0"]
    command += ["--no-control-socket", "--graceful-timeout", "5", "pipeforge.wsgi:app"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=_env(config, token), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = _wait_for_url(proc, log, 60.0)
        served = Served(name, url, proc, log, config, token)
        deadline = time.monotonic() + 30
        while len(served.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        return served
    except BaseException:
        stop_process(proc)
        raise


def _get(url: str) -> object:
    response = requests.get(url, timeout=30)
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def iris(tmp_path_factory, token) -> Iterator[Served]:
    """examples/iris with a model fitted by ``pf-fit``, as its README says."""
    config = _copy_example("iris", tmp_path_factory.mktemp("fuzz")) / "config.yaml"
    _edit_yaml(config, inference_protocol={"enabled": True})
    _run(["pf-fit"], config, token)
    served = _serve("iris", config, token)
    served.snapshot = lambda: _get(served.url + "/list")
    version = st.one_of(st.integers(1, 3), st.integers(1, 3).map(str))
    infer = {"id": st.sampled_from(("a", "b")), "inputs": protocol_tensors(IRIS_FEATURES)}
    served.example = Example(
        names={"version": ("1", "2")},
        features=IRIS_FEATURES,
        bodies={
            "POST /fit": {},
            "POST /update-model-cache": {},
            "POST /activate": {"model_version": version},
            "POST /delete": {"model_version": version},
            "POST /traffic": {
                "service": st.sampled_from(("/predict", "/nope")),
                "traffic": st.dictionaries(
                    st.sampled_from(("active", "champion")), st.floats(0, 100), max_size=2
                ),
            },
            "POST /alias": {
                "alias": st.sampled_from(("champion", "challenger", "active", "9x")),
                "model_version": version,
            },
            "POST /feedback": {
                "id": st.sampled_from(("a", "b")),
                "ground_truth": st.sampled_from(("Iris-setosa", "Iris-virginica")),
            },
            "POST /v2/models/predict_service/infer": infer,
            "POST /v2/models/predict_service/versions/{version}/infer": infer,
        },
    )
    yield served
    stop_process(served.proc)


@pytest.fixture(scope="module")
def iris_pipelines(tmp_path_factory, token) -> Iterator[Served]:
    """examples/iris's pipelines, trained and saved by ``pf-pipeline run train_iris --save``."""
    from pipeforge.pipelines import OpStore

    config = _copy_example("iris", tmp_path_factory.mktemp("fuzz")) / "pipelines.yaml"
    _edit_yaml(config)
    _run(["pf-pipeline", "run", "train_iris", "--save"], config, token)
    served = _serve("iris pipelines", config, token)
    store = OpStore(f"sqlite:///{config.parent / 'iris-ops.db'}")
    ops = tuple(yaml.safe_load(config.read_text())["ops"])
    served.snapshot = lambda: {op: store.list_versions(op) for op in ops}
    pipelines = tuple(yaml.safe_load(config.read_text())["pipelines"])
    sample = st.lists(st.floats(0, 8), min_size=4, max_size=4)
    served.example = Example(
        names={"name": pipelines},
        features=IRIS_FEATURES,
        bodies={"POST /pipelines/{name}/main": {"pipeline_input": st.lists(sample, min_size=1)}},
    )
    yield served
    stop_process(served.proc)


@pytest.fixture(scope="module")
def online(tmp_path_factory, token) -> Iterator[Served]:
    """examples/online; its event streams end after a second so that they hold no worker long."""
    config = _copy_example("online", tmp_path_factory.mktemp("fuzz")) / "config.yaml"
    _edit_yaml(config, online={"stream_seconds": 1}, inference_protocol={"enabled": True})
    served = _serve("online", config, token)

    def snapshot() -> object:
        status, listing = _get(served.url + "/api/models")
        assert status == 200, listing
        return listing, {m: _get(f"{served.url}/api/metrics?model={m}") for m in listing["models"]}

    served.snapshot = snapshot
    models = tuple(snapshot()[0]["models"])
    features = st.fixed_dictionaries({name: st.floats(-3, 300) for name in DIABETES_FEATURES})
    ids = st.sampled_from(("a", "b", "c"))
    served.example = Example(
        names={"name": models},
        features=DIABETES_FEATURES,
        bodies={
            "POST /api/predict": {"id": ids, "features": features},
            "POST /api/learn": {"features": features, "ground_truth": st.floats(25, 350)},
            "POST /api/init": {"flavor": st.sampled_from(("regression", "binary"))},
            "POST /v2/models/{name}/infer": {"inputs": protocol_tensors(DIABETES_FEATURES)},
        },
    )
    yield served
    stop_process(served.proc)


# -- the routes ------------------------------------------------------------------------


def _kind(route: Route) -> str:
    if route.method in ("HEAD", "OPTIONS"):
        return "head_options"
    if "/stream/" in route.path:
        return "stream"
    return "body" if route.method in ("POST", "PUT", "PATCH", "DELETE") or route.query else "plain"


# -- the properties --------------------------------------------------------------------


def _removes_what_is_served(served: Served, request: FuzzRequest) -> bool:
    """Deleting an online model the example serves, or a forced delete with the token."""
    path, _, query = request.target.partition("?")
    names = served.example.names.get("name", ()) if served.name == "online" else ()
    if request.method == "DELETE" and any(path.endswith("/" + name) for name in names):
        return True
    authorized = ("Authorization", f"Bearer {served.token}") in request.headers
    forced = b"force" in (request.body or b"") or "force" in query
    return authorized and forced and path.endswith("/delete")


def _wait_for_job(served: Served, path: str, answer: Answer) -> str | None:
    """After a 2xx that started a job (``job_id``): wait for its end; a problem, or ``None``."""
    try:
        job_id = json.loads(answer.body).get("job_id")
    except (ValueError, AttributeError):
        return None
    if not isinstance(job_id, str):
        return None
    where = "/pipelines/jobs/" if path.startswith("/pipelines/") else "/jobs/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = requests.get(served.url + where + job_id, timeout=30)
        if response.status_code == 200:  # 404: asked a worker that did not run it
            record = response.json()
            if record.get("status", record.get("job_status")) in _DONE:
                return None
        time.sleep(0.05)
    return f"job {job_id} did not end within 60 s"


def _by_design(path: str, answer: Answer) -> bool:
    is_json = answer.content_type.startswith("application/json")
    return answer.status == 503 and is_json and any(re.search(p, path) for p, _ in BY_DESIGN_503)


def check(served: Served, route: Route, request: FuzzRequest, before: list) -> None:
    """Send ``request``; record what breaks a property. ``before[0]``: the last store snapshot."""
    host, port = port_of(served.url)
    offset = served.log.stat().st_size
    path = request.target.split("?", 1)[0]
    try:
        answer = send(host, port, request)
    except (OSError, http.client.HTTPException) as exc:
        served.counts[route.label]["no answer"] += 1
        log = served.log_since(offset)
        served.found.append(f"{route.label}: no answer ({exc!r}) to\n{request}\n{log[-3000:]}")
        return
    wrong = problems(request, answer)
    log = served.log_since(offset)
    kind = f"{answer.status // 100}xx"
    if _by_design(path, answer):
        wrong, kind = [w for w in wrong if not w.startswith("5xx")], "503 by design"
    if 400 <= answer.status < 500:
        after = served.snapshot()
        if after != before[0]:
            wrong.append(f"the store changed after a {answer.status}: {before[0]!r} -> {after!r}")
            before[0] = after
    elif answer.status < 400:
        late = _wait_for_job(served, path, answer)
        wrong += [late] if late else []
        before[0] = served.snapshot()
    if wrong and answer.status in (400, 414, 431) and "Invalid request from ip=" in log:
        kind, wrong = "refused by gunicorn", []  # its own parser's answer, before pipeforge
    served.counts[route.label][kind] += 1
    if answer.status < 300 and request.method not in ("GET", "HEAD", "OPTIONS"):
        served.accepted.append(f"{route.label}: {answer.status}\n{request}")
    if wrong:
        body = answer.body[:300].decode("utf-8", "replace")
        problem = "; ".join(wrong)
        served.found.append(
            f"{route.label}: {problem}\n{request}\n-> {answer.status} {body}\n{log[-3000:]}"
        )


def fuzz_route(served: Served, route: Route, strategy, examples: int) -> None:
    before = [served.snapshot()]

    @settings(FUZZ, max_examples=examples)
    @given(strategy)
    def run(request: FuzzRequest) -> None:
        assume(not _removes_what_is_served(served, request))
        check(served, route, request, before)

    for request in known_bad_requests(route, served.example, served.token):
        run = example(request)(run)
    run()


def _table(served: Served) -> str:
    kinds = sorted({kind for counts in served.counts.values() for kind in counts})
    width = max(len(label) for label in served.counts)
    lines = [f"{'route':<{width}}  {'sent':>5}  {'secs':>5}  " + "  ".join(kinds)]
    for label, counts in sorted(served.counts.items()):
        cells = "  ".join(f"{counts.get(kind, 0):>{len(kind)}}" for kind in kinds)
        seconds = served.seconds[label]
        lines.append(f"{label:<{width}}  {sum(counts.values()):>5}  {seconds:5.1f}  {cells}")
    total = sum(sum(counts.values()) for counts in served.counts.values())
    return f"\n{served.name}: {total} requests over {len(served.counts)} routes\n" + "\n".join(
        lines
    )


def fuzz_all(served: Served, folder: Path) -> None:
    workers = served.workers()
    assert len(workers) == 2, served.log_since(0)
    routes = all_routes(served.url, served.config, served.token, folder)
    for route in routes:
        strategy = requests_for(route, served.example, served.token)
        started = time.monotonic()
        fuzz_route(served, route, strategy, EXAMPLES[_kind(route)])
        served.seconds[route.label] += time.monotonic() - started
        if served.workers() != workers:
            served.found.append(f"{route.label}: a worker died: {workers} -> {served.workers()}")
            workers = served.workers()
    odd = Route("*", "(odd paths and methods)", source="odd")
    started = time.monotonic()
    fuzz_route(served, odd, odd_requests(served.example), EXAMPLES["odd"])
    served.seconds[odd.label] += time.monotonic() - started
    print(_table(served))
    (served.log.parent / "fuzz-findings.txt").write_text("\n\n".join(served.found))
    (served.log.parent / "fuzz-accepted.txt").write_text("\n\n".join(served.accepted))
    untried = {r.label for r in routes} - set(served.counts)
    assert not untried, f"routes never fuzzed: {sorted(untried)}"
    assert not served.found, f"{len(served.found)} problems:\n\n" + "\n\n".join(served.found)


@pytest.mark.slow
def test_fuzz_iris_routes(iris, tmp_path):
    fuzz_all(iris, tmp_path)
    # the read-only release routes of the dashboard, fuzzed like every other route
    assert {"GET /release", "GET /live-scores"} <= set(iris.counts)


@pytest.mark.slow
def test_fuzz_iris_pipelines_routes(iris_pipelines, tmp_path):
    fuzz_all(iris_pipelines, tmp_path)


@pytest.mark.slow
def test_fuzz_online_routes(online, tmp_path):
    fuzz_all(online, tmp_path)


def test_list_without_a_model_store_is_a_404(tmp_path):
    """Found by the fuzzing: ``/list`` of an online-only service answered 500."""
    from pipeforge.config import load_config
    from pipeforge.server import create_app
    from tests.fixtures.online import online_config

    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/o.db"}
    app = create_app(load_config([str(online_config(tmp_path, store))]))
    answer = app.test_client().get("/list")
    assert answer.status_code == 404
    assert "no model store" in answer.json["metadata"]["error_message"]
