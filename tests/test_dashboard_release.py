"""The dashboard's Release panel in a real headless Chromium, against real gunicorn (2 workers).

The store holds a champion (version 1, C=0.01) and a challenger (version 2,
C=3.0); the service splits its traffic 70/30 between them, sticky per
caller, logs its answers and takes feedback, all through the HTTP API. The
panel's figures must be those of ``GET /release`` and ``GET /list``; the
Promote button is refused without the token and on short evidence, then
moves ``champion`` to the challenger's version. Screenshots:
docs/img/dashboard-release*.png (``PIPEFORGE_SCREENSHOTS=docs/img``).
"""

from __future__ import annotations

import time

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from pipeforge.cli import scripts
from tests.fixtures.gunicorn import IRIS_DATA, IRIS_FEATURES, iris_config
from tests.test_dashboard import WAIT, full_height, loaders, open_dashboard, texts
from tests.test_dashboard_routes import TOKEN

pytestmark = pytest.mark.slow

GUARD = ["tests.test_dashboard_routes.requires_token"]
CALLERS = 90  # logged requests, one caller each; the last third with shifted petal widths
SHIFTED = 60


@pytest.fixture
def release_store(tmp_path, monkeypatch, capsys):
    """Versions 1 (C=0.01) and 2 (C=3.0), evaluated; champion -> 1, challenger -> 2 (tagged)."""
    for C in (0.01, 3.0):
        model = {"__factory__": "sklearn.linear_model.LogisticRegression", "C": C, "max_iter": 1000}
        path = iris_config(tmp_path, name=f"fit-{C}.py", model=model, **loaders())
        monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
        assert scripts.fit_main(["-e"]) == 0
    for words in (
        ["alias", "active", "1"],
        ["alias", "champion", "1"],
        ["alias", "challenger", "2"],
        ["tag", "2", "data=iris-2024", "reviewed=no"],
    ):
        assert scripts.admin_main(words) == 0
    capsys.readouterr()
    return tmp_path


def serve_release(gunicorn_server, tmp_path) -> str:
    service = {
        "__factory__": "pipeforge.server.PredictService",
        "mapping": [[name, "float"] for name in IRIS_FEATURES],
        "traffic": {"champion": 70, "challenger": 30},
        "sticky_key": "X-User-ID",
        "prediction_log": {"flush_seconds": 0.2},
    }
    rules = [
        {
            "__factory__": "pipeforge.server.add_url_rule",
            "rule": rule,
            "view_func": f"pipeforge.server.{view}",
            "methods": ["POST"],
        }
        for rule, view in (("/alias", "move_alias"), ("/traffic", "set_traffic"))
    ]
    config = iris_config(
        tmp_path,
        predict_service=service,
        flask_add_url_rules=rules,
        feedback={"enabled": True},
        feedback_decorators=GUARD,
        alias_decorators=GUARD,
        traffic_decorators=GUARD,
        dashboard={"auth_header": "X-Token"},
        drift={"min_rows": 10, "every": 1},
        security=None,
        **loaders(),
    )
    return gunicorn_server(config, args=["--threads", "4"])


def predict_and_give_feedback(base: str) -> None:
    """Predict for CALLERS callers (the last ones with shifted inputs), then post the truths."""
    rows = [line.split(",") for line in IRIS_DATA.read_text().split() if line][:CALLERS]
    truths = {}
    with requests.Session() as session:
        for index, row in enumerate(rows):
            sample = dict(zip(IRIS_FEATURES, map(float, row[:4]), strict=True))
            if index >= SHIFTED:
                sample["petal width"] += 1.5  # what the training data never had
            headers = {"X-User-ID": f"caller-{index}", "X-Request-ID": f"req-{index}"}
            answer = session.get(f"{base}/predict", params=sample, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["metadata"]["model_alias"] in ("champion", "challenger")
            truths[f"req-{index}"] = row[4]
        # A worker writes its answers within flush_seconds: an id it has not written is a 404.
        deadline = time.monotonic() + WAIT
        while truths and time.monotonic() < deadline:
            body = [{"id": key, "ground_truth": value} for key, value in truths.items()]
            answer = session.post(f"{base}/feedback", json=body, headers={"X-Token": TOKEN})
            assert answer.status_code == 200, answer.text
            for outcome in answer.json()["result"]:
                assert outcome["status"] in (200, 404), outcome
                if outcome["status"] == 200:
                    del truths[outcome["id"]]
            if truths:
                time.sleep(0.2)
        assert not truths, f"never logged: {sorted(truths)}"


def settled(base: str) -> dict:
    """``/release`` once both workers count every feedback and input (they reread the log)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        bodies = [requests.get(f"{base}/release", timeout=10).json() for _ in range(4)]
        if all(
            sum(s["n"] for s in b["version_scores"]) == CALLERS
            and sum(v["rows"] for v in b["drift"]["versions"]) == CALLERS
            for b in bodies
        ):
            return bodies[-1]
        time.sleep(0.25)
    raise AssertionError(f"/release never counted {CALLERS} feedbacks: {bodies[-1]}")


def card_text(driver, alias: str, selector: str) -> list[str]:
    return texts(driver, f'#release-body article[data-alias="{alias}"] {selector}')


def test_release_panel_shows_the_release_and_promotes(
    release_store, gunicorn_server, chromium, screenshots
):
    base = serve_release(gunicorn_server, release_store)
    predict_and_give_feedback(base)
    body = settled(base)
    listed = {m["version"]: m for m in requests.get(f"{base}/list", timeout=10).json()["models"]}
    assert body["aliases"] == {"active": 1, "challenger": 2, "champion": 1}
    scores = {s["version"]: s for s in body["version_scores"]}
    assert set(scores) == {1, 2}

    open_dashboard(chromium, f"{base}/dashboard")

    def shown(driver) -> bool:
        figures = card_text(driver, "challenger", '[data-figure="live-score"]')
        expected = f"{scores[2]['metric']} {scores[2]['score']:.4f}"
        return figures == [expected]

    WebDriverWait(chromium, WAIT).until(shown)
    cards = chromium.execute_script(
        "return Array.from(document.querySelectorAll('#release-body article.release-card'),"
        " e => e.dataset.alias)"
    )
    assert cards == ["champion", "challenger"]  # 'active' names the champion's version
    assert card_text(chromium, "champion", "h3 [data-active]") == ["active"]
    for alias in ("champion", "challenger"):
        version = body["aliases"][alias]
        score = scores[version]
        assert card_text(chromium, alias, '[data-figure="version"]') == [str(version)]
        assert card_text(chromium, alias, '[data-figure="live-score"]') == [
            f"{score['metric']} {score['score']:.4f}"
        ]
        assert card_text(chromium, alias, '[data-figure="feedback"]') == [str(score["n"])]
        stored = listed[version]["score_test"]
        assert card_text(chromium, alias, 'tr[data-score="score_test"] td')[0] == f"{stored:.4f}"
        # the drift of its inputs, feature by feature, as /release reports it
        [drift] = [v for v in body["drift"]["versions"] if v["version"] == version]
        psi = chromium.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " e => [e.closest('tr').dataset.feature, e.dataset.psi])",
            f'#release-body article[data-alias="{alias}"] td[data-psi]',
        )
        assert {name: float(value) for name, value in psi} == {
            f["name"]: f["psi"] for f in drift["features"]
        }
        flagged = card_text(chromium, alias, "tr.drifted th")
        assert flagged == [f"⚠ {f['name']}" for f in drift["features"] if f["drifted"]]
    assert "petal width" in {
        f["name"] for v in body["drift"]["versions"] for f in v["features"] if f["drifted"]
    }
    assert card_text(chromium, "champion", '[data-figure="traffic"]') == ["70 % of /predict"]
    assert card_text(chromium, "challenger", '[data-figure="traffic"]') == ["30 % of /predict"]
    assert card_text(chromium, "challenger", "[data-tag]") == ["data=iris-2024", "reviewed=no"]
    # The chart: one line per version, ending on its live score.
    ends = chromium.execute_script(
        "return Array.from(document.querySelectorAll('#release-chart circle'),"
        " e => [Number(e.dataset.version), Number(e.dataset.score), Number(e.dataset.n)])"
    )
    assert {v: (s, n) for v, s, n in ends} == {v: (s["score"], s["n"]) for v, s in scores.items()}
    # Promote only where it means something: not on the champion, nor on 'active'.
    promote = '#release-body [data-action="promote"]'
    forms = chromium.execute_script(
        "return Array.from(document.querySelectorAll('#release-body form.promote'),"
        " e => e.dataset.alias)"
    )
    assert forms == ["challenger"]
    full_height(chromium)
    screenshots(chromium.find_element(By.ID, "release"), "dashboard-release")

    # Without the token the route's guard refuses, and nothing moves.
    chromium.execute_script("window.confirm = () => true")
    chromium.find_element(By.CSS_SELECTOR, promote).click()
    WebDriverWait(chromium, WAIT).until(lambda d: texts(d, "#status")[0].startswith("Not"))
    assert "X-Token" in texts(chromium, "#status")[0]
    assert requests.get(f"{base}/list", timeout=10).json()["aliases"]["champion"] == 1

    # With the token, from the keyboard: short evidence is refused with its reason (409) ...
    chromium.find_element(By.CSS_SELECTOR, "#auth summary").click()
    before = chromium.find_element(By.ID, "release-body")
    chromium.find_element(By.ID, "auth-token").send_keys(TOKEN, Keys.ENTER)
    WebDriverWait(chromium, WAIT).until(staleness_of(before))  # the page reloads
    WebDriverWait(chromium, WAIT).until(
        lambda d: (
            d.execute_script("return document.body.dataset.ready")
            and d.find_elements(By.CSS_SELECTOR, promote)
        )
    )
    chromium.execute_script("window.confirm = () => true")
    page = chromium.find_element(By.TAG_NAME, "body")
    for _ in range(120):
        page.send_keys(Keys.TAB)
        focused = chromium.switch_to.active_element
        if focused.get_attribute("name") == "min_feedback":
            break
        page = focused
    else:
        pytest.fail("the promote form is not reachable with the Tab key")
    focused.send_keys("1000", Keys.ENTER)
    WebDriverWait(chromium, WAIT).until(lambda d: texts(d, "#status")[0].startswith("Not"))
    assert "at least 1000 needed" in texts(chromium, "#status")[0]
    assert requests.get(f"{base}/list", timeout=10).json()["aliases"]["champion"] == 1

    # ... and without conditions the champion moves to the challenger's version.
    field = chromium.find_element(By.CSS_SELECTOR, '#release-body input[name="min_feedback"]')
    field.clear()
    field.send_keys(Keys.TAB, Keys.TAB)
    assert chromium.switch_to.active_element.get_attribute("data-action") == "promote"
    chromium.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(chromium, WAIT).until(
        lambda d: texts(d, "#status")[0].startswith("champion now names version 2")
    )
    assert requests.get(f"{base}/list", timeout=10).json()["aliases"]["champion"] == 2
    WebDriverWait(chromium, WAIT).until(
        lambda d: card_text(d, "champion", '[data-figure="version"]') == ["2"]
    )
    assert not chromium.find_elements(By.CSS_SELECTOR, promote)
    champion_badges = texts(chromium, '#versions tr[data-version="2"] .badge.alias')
    assert champion_badges == ["challenger", "champion"]
    full_height(chromium)
    screenshots(chromium.find_element(By.ID, "release"), "dashboard-release-promoted")
