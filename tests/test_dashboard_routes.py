"""The dashboard's server side: page, files, config.json, /delete and the pipeline graph route."""

from __future__ import annotations

import functools
import hmac
from pathlib import Path

import pytest
from flask import request
from werkzeug.exceptions import Forbidden

from pipeforge.cli.pipelines import main as pipeline_main
from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.server import create_app
from pipeforge.server.dashboard import settings
from tests.fixtures.gunicorn import iris_config

PIPELINES = Path(__file__).resolve().parent.parent / "examples" / "iris" / "pipelines.yaml"
TOKEN = "dash-token"


def requires_token(view):
    """403 unless the X-Token header carries the token (as docs/serving.md shows)."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if not hmac.compare_digest(request.headers.get("X-Token", ""), TOKEN):
            raise Forbidden("missing or wrong X-Token header")
        return view(*args, **kwargs)

    return guarded


LIFECYCLE = [
    {
        "__factory__": "pipeforge.server.add_url_rule",
        "rule": rule,
        "view_func": f"pipeforge.server.{view}",
        "methods": ["POST"],
    }
    for rule, view in (("/activate", "activate"), ("/admin/delete", "delete"))
]


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """``make_app(**entries)``: an app on the iris config (+ the iris pipelines), 2 models."""
    from pipeforge import training

    monkeypatch.setenv("PIPEFORGE_OP_STORE", f"sqlite:///{tmp_path / 'ops.db'}")
    apps = []

    def make(pipelines: bool = True, **entries):
        entries.setdefault("flask_add_url_rules", LIFECYCLE)
        entries.setdefault("security", {"unguarded": ["activate", "delete"]})
        files = [str(iris_config(tmp_path, **entries))]
        if pipelines:
            files.append(str(PIPELINES))
        config = load_config(files, __mode__="predict")
        if not apps:
            for _ in range(2):
                training.fit(
                    config["dataset_loader_train"], config["model"], config["model_persister"]
                )
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["pipeforge"].stop()


def test_page_files_and_config(make_app):
    client = make_app().test_client()
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<meta name="pf-base" content="/dashboard">' in html
    assert 'src="/dashboard/static/dashboard.js"' in html
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/").get_data(as_text=True) == html
    assert client.get("/dashboard/").status_code == 200
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/dashboard/static/dashboard.css").mimetype == "text/css"
    assert client.get("/dashboard/static/../__init__.py").status_code == 404
    assert client.get("/dashboard/static/nope.js").json["metadata"]["status"] == "ERROR"

    config = client.get("/dashboard/config.json").json
    assert config["service_metadata"] == {"service_name": "iris", "service_version": "0.1"}
    assert config["auth_header"] is None and config["refresh_seconds"] == 5
    routes = config["routes"]
    assert routes["list"] == "/list" and routes["alive"] == "/alive"
    assert routes["activate"] == {"path": "/activate", "method": "POST"}
    assert routes["delete"] == {"path": "/admin/delete", "method": "POST"}
    assert "fit" not in routes
    assert routes["pipelines"] == {
        "available": "/available_pipelines",
        "graph": "/pipelines/{name}/graph",
    }


def test_config_follows_the_mount_point(make_app):
    client = make_app().test_client()
    mounted = "http://localhost/pf/"  # behind a proxy that mounts the app at /pf
    html = client.get("/dashboard", base_url=mounted).get_data(as_text=True)
    assert '<meta name="pf-base" content="/pf/dashboard">' in html
    routes = client.get("/dashboard/config.json", base_url=mounted).json["routes"]
    assert routes["list"] == "/pf/list" and routes["activate"]["path"] == "/pf/activate"


def test_settings_path_root_and_off(make_app):
    app = make_app(
        pipelines=False,
        dashboard={"path": "/ui/", "root": False, "auth_header": "X-Token", "refresh_seconds": 2},
        flask_add_url_rules=[],
    )
    client = app.test_client()
    assert client.get("/ui").status_code == 200
    assert client.get("/").status_code == 404 and client.get("/dashboard").status_code == 404
    config = client.get("/ui/config.json").json
    assert config["auth_header"] == "X-Token" and config["refresh_seconds"] == 2
    assert config["routes"]["pipelines"] is None and "activate" not in config["routes"]

    client = make_app(pipelines=False, dashboard=False).test_client()
    assert client.get("/dashboard").status_code == 404


def test_root_is_left_to_another_route(make_app):
    rule = {
        "__factory__": "pipeforge.server.add_url_rule",
        "rule": "/",
        "endpoint": "home",
        "view_func": "pipeforge.server.list_models",
    }
    client = make_app(pipelines=False, flask_add_url_rules=[rule]).test_client()
    assert client.get("/").json["properties"]["active-model"] == "2"
    assert client.get("/dashboard").status_code == 200


@pytest.mark.parametrize(
    "value, problem",
    [
        ({"path": "dash"}, "dashboard.path: must be a path starting with '/'"),
        ({"colour": "red"}, "dashboard.colour: unknown setting 'colour' (known: "),
        ({"refresh_seconds": 0}, "dashboard.refresh_seconds: must be a number of seconds >= 1"),
        ({"auth_header": ""}, "dashboard.auth_header: must be an HTTP header name"),
        ("yes", "dashboard: must be true, false or a dict of settings"),
    ],
)
def test_bad_settings_are_config_errors(value, problem):
    with pytest.raises(ConfigError) as info:
        settings({"dashboard": value})
    assert problem in str(info.value)


def test_a_bad_setting_stops_the_app(make_app):
    with pytest.raises(ConfigError, match="dashboard.path: must be a path"):
        make_app(pipelines=False, dashboard={"path": "/"})


def test_delete_route(make_app):
    client = make_app(pipelines=False).test_client()
    assert client.post("/admin/delete", json={"model_version": 1}).json["model_version"] == 1
    assert [m["version"] for m in client.get("/list").json["models"]] == [2]
    missing = client.post("/admin/delete", json={"model_version": 1})
    assert missing.status_code == 404
    assert "no model with version 1" in missing.json["metadata"]["error_message"]
    assert client.post("/admin/delete").status_code == 400
    assert client.post("/admin/delete", json={"model_version": "x"}).status_code == 400


def test_graph_route(make_app, capsys, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(PIPELINES))
    client = make_app().test_client()
    before = client.get("/pipelines/predict_iris/graph").json
    assert not before["is_loaded"] and "has never been trained" in before["load_error"]
    assert before["svg"].startswith("<svg ") and 'data-op="pca"' in before["svg"]

    assert pipeline_main(["run", "train_iris", "--save"]) == 0
    capsys.readouterr()
    after = client.get("/pipelines/predict_iris/graph").json
    assert after["is_loaded"] and after["load_error"] is None
    assert [n["is_current"] for n in after["nodes"]] == [True, True]
    assert "svg" not in client.get("/pipelines/predict_iris/graph?svg=false").json
    assert client.get("/pipelines/predict_iris/graph?svg=maybe").status_code == 400
    unknown = client.get("/pipelines/nope/graph")
    assert unknown.status_code == 404 and "unknown pipeline 'nope'" in unknown.get_data(
        as_text=True
    )


def test_decorator_lists_guard_the_new_routes(make_app):
    guard = ["tests.test_dashboard_routes.requires_token"]
    client = make_app(
        pipelines_decorators=guard, delete_decorators=guard, dashboard_decorators=guard
    ).test_client()
    token = {"X-Token": TOKEN}
    for path in ("/pipelines/predict_iris/graph", "/available_pipelines", "/dashboard"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert refused.json["metadata"]["error_message"].startswith("Forbidden")
        assert client.get(path, headers=token).status_code == 200, path
    assert client.get("/dashboard/config.json").status_code == 403
    assert client.post("/admin/delete", json={"model_version": 1}).status_code == 403
    assert client.post("/admin/delete", json={"model_version": 1}, headers=token).status_code == 200
