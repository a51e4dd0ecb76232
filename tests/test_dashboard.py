"""The dashboard in a real headless Chromium, against real gunicorn and a store the test prepares.

Screenshots go to ``$PIPEFORGE_SCREENSHOTS`` (default: the test's tmp
folder). ``PIPEFORGE_SCREENSHOTS=docs/img pytest tests/test_dashboard.py``
regenerates the pictures of docs/dashboard.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from pipeforge.cli import scripts
from pipeforge.cli.pipelines import main as pipeline_main
from tests.fixtures.chromium import requested_urls
from tests.fixtures.gunicorn import IRIS_DATA, IRIS_FEATURES, iris_config

pytestmark = pytest.mark.slow

PIPELINES = Path(__file__).resolve().parent.parent / "examples" / "iris" / "pipelines.yaml"
VERSIONS_C = [0.01, 0.1, 3.0]  # three versions, three different test scores
TOKEN = "dash-token"  # what tests.test_dashboard_routes.requires_token accepts
WAIT = 40  # seconds a page may take to show something (a loaded 2-core machine)


def lifecycle_routes() -> list[dict]:
    return [
        {
            "__factory__": "pipeforge.server.add_url_rule",
            "rule": f"/{view}",
            "view_func": f"pipeforge.server.{view}",
            "methods": ["POST"],
        }
        for view in ("activate", "delete")
    ]


def loaders() -> dict:
    train = {
        "__factory__": "pipeforge.dataset.Table",
        "path": str(IRIS_DATA),
        "names": [*IRIS_FEATURES, "species"],
        "target_column": "species",
        "sep": ",",
        "nrows": 100,
    }
    test = {**train, "nrows": None, "skiprows": 100}
    return {"dataset_loader_train": train, "dataset_loader_test": test, "scoring": "accuracy"}


@pytest.fixture
def store(tmp_path, monkeypatch, capsys):
    """Three stored versions with different C and scores (v3 active), the iris pipelines trained."""
    monkeypatch.setenv("PIPEFORGE_OP_STORE", f"sqlite:///{tmp_path / 'ops.db'}")
    for C in VERSIONS_C:
        model = {"__factory__": "sklearn.linear_model.LogisticRegression", "C": C, "max_iter": 1000}
        path = iris_config(tmp_path, name=f"fit-{C}.py", model=model, **loaders())
        monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
        assert scripts.fit_main(["-e"]) == 0
    assert scripts.test_main(["--model-version=1"]) == 0
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(PIPELINES))
    assert pipeline_main(["run", "train_iris", "--save"]) == 0
    capsys.readouterr()
    return tmp_path


def online_models(tmp_path) -> dict:
    """Two online models: a River pipeline (regression) and a River classifier (binary)."""
    river = {
        "__factory__": "pipeforge.online.pipeline",
        "steps": [
            {"__factory__": "river.preprocessing.StandardScaler"},
            {"__factory__": "river.linear_model.LinearRegression"},
        ],
    }
    return {
        "online_models": {
            "petal-length": {"model": river, "flavor": "regression", "default": True},
            "is-setosa": {
                "model": {"__factory__": "river.linear_model.LogisticRegression"},
                "flavor": "binary",
            },
        },
        "online": {
            "store": {
                "__factory__": "pipeforge.online.SQLStore",
                "url": f"sqlite:///{tmp_path / 'online.db'}",
            },
            "allow_events": True,  # the page's live events (clients' data: off by default)
        },
        "security": {"unguarded": ["activate", "delete", "online.events"]},
    }


def learn(base: str, rows: list[list[str]], batch: str) -> None:
    """Predict (with an id) then learn each iris row, for both online models."""
    with requests.Session() as session:
        for index, row in enumerate(rows):
            features = dict(zip(IRIS_FEATURES, map(float, row[:4]), strict=True))
            del features["petal length"]
            for model, truth in (
                ("petal-length", float(row[2])),
                ("is-setosa", row[4] == "Iris-setosa"),
            ):
                key = f"{batch}-{model}-{index}"
                body = {"id": key, "features": features, "model": model}
                assert session.post(f"{base}/api/predict", json=body, timeout=10).ok
                body = {"id": key, "ground_truth": truth}
                assert session.post(f"{base}/api/learn", json=body, timeout=10).ok


def serve(gunicorn_server, tmp_path, **entries) -> str:
    entries.setdefault("flask_add_url_rules", lifecycle_routes())
    config = iris_config(tmp_path, **entries)
    env = {"PIPEFORGE_OP_STORE": f"sqlite:///{tmp_path / 'ops.db'}"}
    return gunicorn_server(f"{config},{PIPELINES}", args=["--threads", "4"], env=env)


def open_dashboard(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.body.dataset.ready")
    )


def full_height(driver, width: int = 1280) -> None:
    """Make the viewport as tall as the page, so whole panels fit in a screenshot."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def texts(driver, selector: str) -> list[str]:
    """The texts of the elements matching ``selector``, read at once (panels re-render)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent.trim())",
        selector,
    )


def attributes(driver, selector: str, name: str) -> list[str | None]:
    """An attribute of every element matching ``selector``, read at once."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.getAttribute(arguments[1]))",
        selector,
        name,
    )


def table_rows(driver, selector: str) -> list[list[str]]:
    """The cells' texts of the rows matching ``selector``, read at once (panels re-render)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(row => Array.from(row.cells).map(cell => cell.textContent.trim()))",
        selector,
    )


def assert_only_local_requests(driver, base: str) -> None:
    urls = requested_urls(driver)
    ours = [url for document, url in urls if document.startswith(base)]
    assert f"{base}/list" in ours and f"{base}/dashboard/static/dashboard.js" in ours
    foreign = [url for _, url in urls if url.startswith(("http:", "https:", "ws:", "wss:"))]
    assert all(url.startswith(base + "/") for url in foreign), foreign
    assert all(url.startswith((base + "/", "data:")) for url in ours), ours
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(name.startswith(base + "/") for name in resources), resources


def test_each_panel_shows_the_store(store, gunicorn_server, chromium, screenshots):
    base = serve(gunicorn_server, store, **online_models(store))
    iris_rows = [line.split(",") for line in IRIS_DATA.read_text().split() if line]
    learn(base, iris_rows[::15][:4], "first")
    listed = requests.get(f"{base}/list", timeout=10).json()["models"]
    open_dashboard(chromium, f"{base}/dashboard")

    # Models: one row per version, newest first, with its C, scores and state.
    assert attributes(chromium, "#versions tbody tr", "data-version") == ["3", "2", "1"]
    assert texts(chromium, '#versions td[data-param="C"]') == ["3", "0.1", "0.01"]
    expected = [f"{m['score_test']:.4f}" for m in reversed(listed)]
    assert texts(chromium, '#versions td[data-score="score_test"]') == expected
    assert len(set(expected)) == 3
    states = [row[2] for row in table_rows(chromium, "#versions tbody tr")]
    assert states[0].startswith("active") and "active" not in states[1]
    assert attributes(chromium, "#score-chart circle", "data-version") == ["1", "2", "3"]
    assert attributes(chromium, "#score-chart circle", "class") == ["dot", "dot", "dot active"]
    assert texts(chromium, 'tr[data-version="3"] [data-action="activate"]') == []
    assert texts(chromium, 'tr[data-version="2"] [data-action="activate"]') == ["Activate"]

    # Compare two versions: the C row is marked as differing.
    for version in ("1", "3"):
        chromium.find_element(By.CSS_SELECTOR, f'tr[data-version="{version}"] input').click()
    chromium.find_element(By.ID, "compare-button").click()
    keys = [row[0] for row in table_rows(chromium, "#compare tbody tr")]
    compared = dict(zip(keys, attributes(chromium, "#compare tbody tr", "class"), strict=True))
    assert compared["params.C"] == "differs" and compared["params.max_iter"] is None

    # Pipelines: every pipeline drawn, one node per op, with the op versions of the store.
    for name in requests.get(f"{base}/available_pipelines", timeout=10).json():
        graph = requests.get(f"{base}/pipelines/{name}/graph?svg=false", timeout=10).json()
        card = f'article[data-pipeline="{name}"] svg g.pf-node[data-op]'
        ops = attributes(chromium, card, "data-op")
        assert sorted(ops) == sorted(n["op"] for n in graph["nodes"])
        versions = dict(zip(ops, attributes(chromium, card, "data-version"), strict=True))
        assert versions == {n["op"]: n["version"] for n in graph["nodes"]}
    predict = 'article[data-pipeline="predict_iris"]'
    assert "loaded" in texts(chromium, f"{predict} h3")[0]
    assert len(attributes(chromium, f"{predict} svg path.pf-link[data-source]", "class")) == 1

    # Service: the served model, its age, and request rates from /metrics.
    assert texts(chromium, "#served-version") == ["version 3"]
    assert texts(chromium, "#model-age")[0].endswith(("s", "min"))
    sample = dict(zip(IRIS_FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True))
    for _ in range(12):
        assert requests.get(f"{base}/predict", params=sample, timeout=10).status_code == 200

    def predict_row(driver):
        for cells in table_rows(driver, "#request-rates tbody tr"):
            if cells[:2] == ["/predict", "GET"] and cells[2] != "…" and int(cells[3]) >= 12:
                return cells
        return None

    cells = WebDriverWait(chromium, WAIT).until(predict_row)
    assert float(cells[2]) >= 0 and cells[4] == "0"

    # Online models: the numbers follow the learn calls, live.
    def figures(driver, model):
        card = f'article[data-model="{model}"]'
        return (
            texts(driver, f'{card} [data-figure="n_learnt"]'),
            table_rows(driver, f"{card} tbody tr"),
            texts(driver, '#online-stats [data-endpoint="learn"] [data-stat="n_calls"]'),
        )

    WebDriverWait(chromium, WAIT).until(
        lambda d: texts(d, "#online .badge.ok") == ["metrics: live", "events: live"]
    )
    learnt, metrics_before, calls = figures(chromium, "petal-length")
    assert learnt == ["4"] and calls == ["8"]
    assert [row[0] for row in metrics_before] == ["MAE", "RMSE", "R2", "SMAPE"]
    learn(base, iris_rows[1::3][:12], "then")
    WebDriverWait(chromium, WAIT).until(lambda d: figures(d, "petal-length")[0] == ["16"])
    WebDriverWait(chromium, WAIT).until(lambda d: figures(d, "is-setosa")[2] == ["32"])
    _, metrics_after, _ = figures(chromium, "petal-length")
    assert [row[1] for row in metrics_after] != [row[1] for row in metrics_before]
    assert texts(chromium, "#online .events li")[0].split(" ")[1] == "learn"

    assert_only_local_requests(chromium, base)

    full_height(chromium)
    for panel in ("models", "pipelines", "online", "service"):
        screenshots(chromium.find_element(By.ID, panel), f"dashboard-{panel}")

    # A narrow phone screen: the page itself never scrolls sideways.
    chromium.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 360, "height": 780, "deviceScaleFactor": 2, "mobile": True},
    )
    open_dashboard(chromium, f"{base}/dashboard")
    widths = chromium.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 360
    assert chromium.find_element(By.CSS_SELECTOR, "nav a[href='#service']").is_displayed()
    screenshots(chromium, "dashboard-narrow")


def test_buttons_activate_and_delete_by_keyboard(store, gunicorn_server, chromium):
    base = serve(gunicorn_server, store)
    open_dashboard(chromium, f"{base}/dashboard")

    # Reach the first "Activate" button (version 2's row) with the Tab key, press Enter.
    body = chromium.find_element(By.TAG_NAME, "body")
    for _ in range(80):
        body.send_keys(Keys.TAB)
        focused = chromium.switch_to.active_element
        if focused.get_attribute("data-action") == "activate":
            break
    else:
        pytest.fail("no Activate button reachable with the Tab key")
    focused.send_keys(Keys.ENTER)
    WebDriverWait(chromium, WAIT).until(lambda d: texts(d, "#served-version") == ["version 2"])
    assert texts(chromium, "#status") == ["Model version 2 is now the active one."]
    assert requests.get(f"{base}/list", timeout=10).json()["properties"]["active-model"] == "2"
    WebDriverWait(chromium, WAIT).until(
        lambda d: all(
            requests.get(f"{base}/alive", timeout=10).json()["model"]["metadata"]["version"] == 2
            for _ in range(4)  # both workers serve it
        )
    )

    chromium.execute_script("window.confirm = () => true")
    chromium.find_element(By.CSS_SELECTOR, 'tr[data-version="1"] [data-action="delete"]').click()
    WebDriverWait(chromium, WAIT).until(lambda d: texts(d, "#versions tbody th") == ["3", "2"])
    assert [m["version"] for m in requests.get(f"{base}/list", timeout=10).json()["models"]] == [
        2,
        3,
    ]


def test_a_token_protected_service_stays_protected(store, gunicorn_server, chromium):
    guard = ["tests.test_dashboard_routes.requires_token"]
    base = serve(
        gunicorn_server,
        store,
        flask_add_url_rules=lifecycle_routes()[:1],  # /activate, no /delete
        dashboard={"auth_header": "X-Token"},
        list_decorators=guard,
        alive_decorators=guard,
        pipelines_decorators=guard,
        activate_decorators=guard,
        online_decorators=guard,
        online_data_decorators=guard,
        **online_models(store),
    )
    assert requests.get(f"{base}/list", timeout=10).status_code == 403
    open_dashboard(chromium, f"{base}/dashboard")
    assert "this data is protected" in texts(chromium, "#models-body")[0]
    assert chromium.find_element(By.ID, "auth").get_attribute("open") is not None
    assert chromium.find_element(By.ID, "auth-header").get_attribute("value") == "X-Token"
    assert not chromium.find_elements(By.CSS_SELECTOR, "#versions")

    chromium.get_log("performance")  # what follows is what the page sends with the token
    chromium.find_element(By.ID, "auth-token").send_keys(TOKEN, Keys.ENTER)
    WebDriverWait(chromium, WAIT).until(
        lambda d: (
            d.execute_script("return document.body.dataset.ready")
            and d.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        )
    )
    assert chromium.find_elements(By.CSS_SELECTOR, 'article[data-pipeline="predict_iris"] svg')
    assert len(chromium.find_elements(By.CSS_SELECTOR, '[data-action="activate"]')) == 2
    assert not chromium.find_elements(By.CSS_SELECTOR, '[data-action="delete"]')
    # The live streams carry the token too (EventSource could not).
    WebDriverWait(chromium, WAIT).until(
        lambda d: texts(d, "#online .badge.ok") == ["metrics: live", "events: live"]
    )
    stored = chromium.execute_script(
        "return [sessionStorage.getItem('pipeforge-dashboard-auth'), localStorage.length]"
    )
    assert json.loads(stored[0]) == {"header": "X-Token", "token": TOKEN}
    assert stored[1] == 0
    sent = [
        json.loads(e["message"])["message"]["params"]["request"]
        for e in chromium.get_log("performance")
        if '"Network.requestWillBeSent"' in e["message"]
    ]
    lists = [r for r in sent if r["url"] == f"{base}/list"]
    headers = [{k.lower(): v for k, v in r["headers"].items()} for r in lists]
    assert headers and all(h.get("x-token") == TOKEN for h in headers)
