"""GET /openapi.json and /docs: a valid OpenAPI 3.1 document of the running config."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipeforge import training
from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.server import PredictService, create_app
from tests.fixtures.gunicorn import IRIS_FEATURES, ROOT, iris_config
from tests.test_server import memory_app

SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}


def check(document: dict, path: str, method: str, status: int, body) -> None:
    """Validate ``body`` against the document's schema for that answer (refs resolved)."""
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, (path, method, status, sorted(responses))
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("paths", path, method.lower(), "responses", str(status))
    )
    answer = responses[str(status)]
    if "$ref" in answer:
        pointer = answer["$ref"][2:]
        answer = document["components"]["responses"][pointer.rsplit("/", 1)[1]]
    assert "application/json" in answer["content"]
    registry = Registry().with_resource(
        "urn:doc", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:doc#/{pointer}/content/application~1json/schema"}
    Draft202012Validator(schema, registry=registry).validate(body)


def fitted_iris(tmp_path, **entries):
    path = iris_config(tmp_path, **entries)
    config = load_config([str(path)], __mode__="predict")
    training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
    return path, config


@pytest.fixture
def iris_app(tmp_path):
    _, config = fitted_iris(tmp_path)
    app = create_app(config)
    yield app
    app.extensions["pipeforge"].stop()


def test_document_validates_and_lists_every_route(iris_app):
    document = iris_app.test_client().get("/openapi.json").json
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"] == {**document["info"], "title": "iris", "version": "0.1"}
    assert set(document["paths"]) == {
        "/predict",
        "/alive",
        "/list",
        "/fit",
        "/update-model-cache",
        "/activate",
        "/jobs/{job_id}",
        "/openapi.json",
        "/docs",
        "/metrics",
        "/dashboard/config.json",
        "/release",
    }
    predict = document["paths"]["/predict"]
    names = [p["name"] for p in predict["get"]["parameters"]]
    assert names == IRIS_FEATURES
    assert all(p["schema"] == {"type": "number"} for p in predict["get"]["parameters"])
    items = predict["post"]["requestBody"]["content"]["application/json"]["schema"]["items"]
    assert items["required"] == IRIS_FEATURES
    result = predict["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["properties"]["result"]["enum"] == [
        "Iris-setosa",
        "Iris-versicolor",
        "Iris-virginica",
    ]
    for status in ("400", "500", "503"):
        assert predict["get"]["responses"][status] == {"$ref": "#/components/responses/Error"}


class Scorer:
    """A user model with two classes and keyword parameters (for typed mappings)."""

    classes_ = np.array([0, 1])

    def predict(self, X, threshold=0.5):
        return (np.asarray(X[:, 0], dtype=float) > threshold).astype(int)

    def predict_proba(self, X, threshold=0.5):
        p = np.clip(np.asarray(X[:, 0], dtype=float), 0, 1)
        return np.column_stack([1 - p, p])


def test_typed_mappings_params_and_probabilities():
    mapping = [("score", "float"), ("count", "int"), ("name", "str"), ("vip", "bool")]
    labels = PredictService(mapping=mapping, params=[("threshold", "float")], entry_point="/p")
    proba = PredictService(mapping=mapping, entry_point="/proba", predict_proba=True)
    client = memory_app(Scorer(), labels, proba).test_client()
    document = client.get("/openapi.json").json
    validate(document)
    params = {p["name"]: p for p in document["paths"]["/p"]["get"]["parameters"]}
    assert {name: p["schema"]["type"] for name, p in params.items()} == {
        "score": "number",
        "count": "integer",
        "name": "string",
        "vip": "boolean",
        "threshold": "number",
    }
    assert params["threshold"]["required"] is False and params["vip"]["required"] is True

    query = "/p?score=0.7&count=2&name=x&vip=true&threshold=0.1"
    response = client.get(query)
    check(document, "/p", "GET", 200, response.json)
    rows = [{"score": 0.2, "count": 1, "name": "a", "vip": False}]
    response = client.post("/proba", json=rows)
    assert response.json["result"] == [{"0": pytest.approx(0.8), "1": pytest.approx(0.2)}]
    check(document, "/proba", "POST", 200, response.json)
    bad = client.post("/proba", json=[{"score": 1}])
    check(document, "/proba", "POST", 400, bad.json)
    # The probabilities are described class by class.
    schema = document["paths"]["/proba"]["post"]["responses"]["200"]["content"]
    items = schema["application/json"]["schema"]["properties"]["result"]["items"]
    assert items["required"] == ["0", "1"]


def test_pipeline_routes_are_described(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEFORGE_OP_STORE", f"sqlite:///{tmp_path / 'ops.db'}")
    app = create_app(load_config([str(ROOT / "examples" / "iris" / "pipelines.yaml")]))
    try:
        client = app.test_client()
        document = client.get("/openapi.json").json
        validate(document)
        main = document["paths"]["/pipelines/{name}/main"]["post"]
        assert main["parameters"][0]["schema"]["enum"] == sorted(
            ["train_iris", "predict_iris", "train_pca", "train_classifier"]
        )
        assert "/available_pipelines" in document["paths"]
        response = client.post("/pipelines/train_iris/main", json={})
        check(document, "/pipelines/{name}/main", "POST", 200, response.json)
        response = client.post("/pipelines/nope/main", json={})
        check(document, "/pipelines/{name}/main", "POST", 404, response.json)
    finally:
        service = app.extensions["pipeforge_pipelines"]
        service.shutdown()
        service.store.dispose()


def test_switches_and_paths(tmp_path):
    _, config = fitted_iris(tmp_path)
    config["openapi"] = {"path": "/api/spec.json", "docs_path": None}
    app = create_app(config)
    client = app.test_client()
    assert client.get("/openapi.json").status_code == 404
    assert "/api/spec.json" in client.get("/api/spec.json").json["paths"]
    assert client.get("/docs").status_code == 404
    app.extensions["pipeforge"].stop()

    config["openapi"] = False
    app = create_app(config)
    assert app.test_client().get("/api/spec.json").status_code == 404
    app.extensions["pipeforge"].stop()

    config["openapi"] = {"pth": "/x"}
    with pytest.raises(
        ConfigError, match="openapi.pth: unknown setting 'pth'; did you mean 'path'"
    ):
        create_app(config)
    config["openapi"] = {"path": "spec.json"}
    with pytest.raises(ConfigError, match="openapi.path: must be a path starting with '/'"):
        create_app(config)


def test_docs_assets_are_served_from_the_package(iris_app):
    client = iris_app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "http://" not in text and "https://" not in text  # nothing from elsewhere
    assert 'data-openapi-url="/openapi.json"' in text
    zipped = client.get("/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    plain = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "Content-Encoding" not in plain.headers
    assert b"SwaggerUIBundle" in plain.data and len(plain.data) > len(zipped.data)
    assert client.get("/docs/assets/secret.txt").status_code == 404


@pytest.mark.slow
def test_real_gunicorn_responses_match_the_document(tmp_path, gunicorn_server):
    path, _ = fitted_iris(tmp_path)
    url = gunicorn_server(path)
    document = requests.get(url + "/openapi.json", timeout=10).json()
    validate(document)
    query = {name: value for name, value in SETOSA.items()}
    calls = [
        ("GET", "/predict", {"params": query}, 200),
        ("POST", "/predict", {"json": [SETOSA, SETOSA]}, 200),
        ("GET", "/predict", {"params": {"sepal length": "x"}}, 400),
        ("POST", "/predict", {"json": {"not": "a list"}}, 400),
        ("GET", "/alive", {}, 200),
        ("GET", "/list", {}, 200),
        ("POST", "/fit", {"json": {"persist": False}}, 200),
        ("POST", "/update-model-cache", {}, 200),
        ("POST", "/activate", {"json": {"model_version": 1}}, 200),
        ("POST", "/activate", {"json": {"model_version": 99}}, 404),
        ("POST", "/activate", {"json": {"model_version": "one"}}, 400),
        ("POST", "/activate", {"data": {"model_version": "1"}}, 415),
    ]
    for method, route, kwargs, status in calls:
        response = requests.request(method, url + route, timeout=30, **kwargs)
        assert response.status_code == status, (method, route, response.text)
        check(document, route, method, status, response.json())


@pytest.mark.slow
def test_docs_page_renders_in_a_browser_without_network(tmp_path, gunicorn_server):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    path, _ = fitted_iris(tmp_path)
    url = gunicorn_server(path, workers=1)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    # Any request leaving 127.0.0.1 (a CDN) would fail: the page must not need one.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(url + "/docs")
        WebDriverWait(driver, 60).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock"))
        )
        text = driver.find_element(By.ID, "swagger-ui").text
        assert "/predict" in text and "/alive" in text
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_wheel_ships_the_docs_page(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = Path(tmp_path).glob("pipeforge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "pipeforge/server/static/docs.html",
        "pipeforge/server/static/docs.js",
        "pipeforge/server/static/swagger-ui/swagger-ui-bundle.js.gz",
        "pipeforge/server/static/swagger-ui/swagger-ui.css.gz",
        "pipeforge/server/static/swagger-ui/LICENSE",
        "pipeforge/server/dashboard/static/index.html",
        "pipeforge/server/dashboard/static/dashboard.js",
        "pipeforge/server/dashboard/static/dashboard.css",
    ):
        assert name in names
