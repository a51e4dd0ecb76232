"""No cross-site writes, separate lists for pf-fit and /fit, the guards in /openapi.json.

Every route that writes takes JSON only (415 with the JSON error body otherwise) and refuses a
request from another site (403) even with a valid token; ``pf-fit`` runs with a web guard on the
route; the document marks guarded operations with the bearer scheme.
"""

from __future__ import annotations

import pickle

import pytest
import requests
from river import linear_model

from pipeforge.cli.models import fit_main
from pipeforge.config import load_config
from pipeforge.guards.same_site import origin_of
from pipeforge.server import create_app
from tests import test_security_guards as rule_tests
from tests.fixtures.gunicorn import iris_config
from tests.test_security_guards import TOKENS, bearer, error, online, rule

make_app = rule_tests.make_app  # the fixture: an app on the iris config with some entries

ACTIVATE = {"json": {"model_version": 1}}


@pytest.fixture
def guarded(make_app, tmp_path, monkeypatch):
    """A client of an app with /activate, /fit and the online admin routes behind the token."""
    monkeypatch.setenv("PIPEFORGE_TOKENS", TOKENS[0])
    token = ["pipeforge.guards.require_token"]
    app = make_app(
        flask_add_url_rules=[rule("activate"), rule("fit"), rule("update_model_cache")],
        activate_decorators=token,
        server_fit_decorators=token,
        update_model_cache_decorators=token,
        **online(tmp_path, allow_upload=True, allow_delete=True, allow_init=True),
        online_admin_decorators=token,
        security={"trusted_origins": ["https://admin.example.com"]},
    )
    return app.test_client()


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"data": '{"model_version": 1}', "content_type": "text/plain"}, "text/plain"),
        ({"data": {"model_version": "1"}}, "application/x-www-form-urlencoded"),
        ({"data": "model_version=1", "content_type": ""}, "a body without Content-Type"),
        ({"data": "x", "content_type": "multipart/form-data; boundary=x"}, "multipart/form-data"),
    ],
)
def test_a_body_browsers_send_cross_site_is_415_even_with_a_token(guarded, body, what):
    message = error(guarded.post("/activate", headers=bearer(TOKENS[0]), **body), 415)
    assert "takes a JSON body sent with Content-Type: application/json" in message
    assert what in message
    error(guarded.post("/api/init", headers=bearer(TOKENS[0]), **body), 415)
    assert guarded.get("/list").json["properties"]["active-model"] == "1"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost.evil.example"},
        {"Origin": "http://localhost:8080"},  # another port: another origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_another_site_is_refused_even_with_a_valid_token(guarded, headers):
    sent = {**bearer(TOKENS[0]), **headers}
    assert "another site" in error(guarded.post("/activate", headers=sent, **ACTIVATE), 403)
    error(guarded.post("/fit", headers=sent), 403)
    error(guarded.delete("/api/model/spam", headers=sent), 403)
    body = pickle.dumps(linear_model.LinearRegression())
    error(guarded.post("/api/model/x", data=body, content_type="application/octet-stream", headers=sent), 403)  # fmt: skip
    assert guarded.get("/api/models").json["models"] == ["reg", "sk", "spam"]


def test_this_site_and_trusted_origins_may_write(guarded):
    token = bearer(TOKENS[0])
    for headers in (
        {},  # not a browser
        {"Origin": "http://localhost"},  # the test client's host
        {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://admin.example.com", "Sec-Fetch-Site": "cross-site"},  # trusted
        {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"},  # behind a proxy
    ):
        answer = guarded.post("/activate", headers={**token, **headers}, **ACTIVATE)
        assert answer.status_code == 200, (headers, answer.json)
    # an empty body needs no type; DELETE has none
    assert guarded.post("/update-model-cache", headers=token).status_code == 200
    assert guarded.delete("/api/model/spam", headers=token).status_code == 204
    assert (
        guarded.post("/api/init", json={"flavor": "regression"}, headers=token).status_code == 201
    )


def test_parameters_come_in_the_json_body(guarded):
    token = bearer(TOKENS[0])
    message = error(guarded.post("/activate?model_version=1", headers=token), 400)
    assert "send 'model_version' in a JSON body" in message
    error(guarded.post("/fit?persist=false", headers=token), 400)
    answer = guarded.post("/fit", json={"persist": False, "evaluate": False}, headers=token)
    assert answer.status_code == 200 and answer.json["job_id"]


def test_an_upload_takes_bytes_no_form_can_send(guarded):
    token = bearer(TOKENS[0])
    body = pickle.dumps(linear_model.LinearRegression())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        message = error(guarded.post("/api/model/x", data=body, content_type=content_type, headers=token), 415)  # fmt: skip
        assert "Content-Type: application/octet-stream" in message
    answer = guarded.post(
        "/api/model/x", data=body, content_type="application/octet-stream", headers=token
    )
    assert answer.status_code == 201 and answer.json == {"name": "x"}


def test_origins_are_compared_by_host_and_port():
    assert (
        origin_of("https://A.example") == origin_of("https://a.example:443") == ("a.example", 443)
    )
    assert origin_of("http://a.example") == ("a.example", 80)
    assert origin_of("null") is None and origin_of("ftp://a.example") is None
    assert origin_of("http://[::1]:8000") == ("::1", 8000)


# -- pf-fit and /fit: separate lists -------------------------------------------------------------


@pytest.fixture
def fit_project(tmp_path, monkeypatch):
    """``write(**entries)``: an iris config with /fit, PIPEFORGE_CONFIG pointing at it."""
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    monkeypatch.setenv("PIPEFORGE_TOKENS", TOKENS[1])

    def write(**entries):
        entries.setdefault("flask_add_url_rules", [rule("fit")])
        path = iris_config(tmp_path, security=None, **entries)
        monkeypatch.setenv("PIPEFORGE_CONFIG", str(path))
        return path

    return write


def _client(path):
    return create_app(load_config([str(path)], __mode__="predict")).test_client()


def test_pf_fit_runs_with_a_web_guard_on_the_route(fit_project, capsys):
    path = fit_project(server_fit_decorators=["tests.test_server_auth.requires_basic_auth"])
    assert fit_main([]) == 0
    assert "Wrote model with version 1" in capsys.readouterr().out
    client = _client(path)
    assert client.post("/fit").status_code == 401  # the route's list guards the route


def test_a_rule_naming_fit_decorators_keeps_it_for_the_route(fit_project, capsys):
    fit = {**rule("fit"), "decorator_list_name": "fit_decorators"}
    path = fit_project(flask_add_url_rules=[fit], fit_decorators=["pipeforge.guards.require_token"])
    assert fit_main([]) == 0  # the token guard lets a call without a request through
    capsys.readouterr()
    client = _client(path)
    error(client.post("/fit"), 401)
    assert client.post("/fit", headers=bearer(TOKENS[1])).status_code == 200


def test_pf_fit_names_the_list_when_a_web_decorator_is_in_it(fit_project, capsys):
    path = fit_project(
        fit_decorators=["tests.test_server_auth.requires_basic_auth"],
        server_fit_decorators=["pipeforge.guards.require_token"],
    )
    assert fit_main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(
        f"{path}: fit_decorators: a decorator listed here needs an HTTP request (a web guard?), "
        "and pf-fit has none: guard the /fit route with 'server_fit_decorators' instead "
        "(docs/security.md)"
    )


# -- OpenAPI and the dashboard ------------------------------------------------------------------


def test_openapi_marks_the_guarded_operations(guarded):
    document = guarded.get("/openapi.json").json
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    activate = document["paths"]["/activate"]["post"]
    assert activate["security"] == [{"bearerAuth": []}] and "401" in activate["responses"]
    body = activate["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["model_version"] == {"type": "integer"}
    assert document["paths"]["/api/init"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/predict"]["get"]
    assert "security" not in document["paths"]["/api/init"]["get"]


def test_the_dashboard_offers_only_what_the_app_has(make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_TOKENS", TOKENS[0])
    routes = make_app(**online(tmp_path)).test_client().get("/dashboard/config.json").json["routes"]
    assert "activate" not in routes and "delete" not in routes
    assert routes["online"]["stream_events"] is None and routes["online"]["stream_metrics"]
    client = make_app(
        flask_add_url_rules=[rule("activate")],
        activate_decorators=["pipeforge.guards.require_token"],
        **online(tmp_path, allow_events=True),
        online_data_decorators=["pipeforge.guards.require_token"],
    ).test_client()
    routes = client.get("/dashboard/config.json").json["routes"]
    assert routes["activate"] == {"path": "/activate", "method": "POST"} and "delete" not in routes
    assert routes["online"]["stream_events"] == "/api/stream/events"


@pytest.mark.slow
def test_gunicorn_serves_a_palladium_config_with_one_warning_per_route(tmp_path, gunicorn_server):
    routes = [
        {**rule(view), "__factory__": "palladium.server.add_url_rule", "view_func": f"palladium.server.{view}"}
        for view in ("fit", "activate")
    ]  # fmt: skip
    path = iris_config(tmp_path, flask_add_url_rules=routes, security=None)
    url = gunicorn_server(path, workers=1)
    log = next(tmp_path.glob("gunicorn-*.log")).read_text()
    assert log.count("runs without a guard, as in Palladium") == 2
    assert log.count("POST /fit runs without a guard") == 1
    job = requests.post(url + "/fit", data={"persist": "true"}, timeout=10)
    assert job.status_code == 200 and job.json()["job_id"]
    foreign = requests.post(
        url + "/activate", data={"model_version": "1"}, headers={"Origin": "https://evil.example"}, timeout=10
    )  # fmt: skip
    assert foreign.status_code == 403 and foreign.json()["metadata"]["status"] == "ERROR"
