"""The rule for routes that write or hand out data (docs/security.md), through HTTP.

Off by default; switched on without a guard, the app (and gunicorn) refuses to start with one
line naming the key; the built-in token guard (two rotated tokens, from the environment or a
file); ``security.unguarded`` and Palladium configs start with one warning per route.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import yaml

from pipeforge import guards, training
from pipeforge.config import load_config
from pipeforge.errors import ConfigError
from pipeforge.server import create_app
from tests.fixtures.gunicorn import iris_config
from tests.fixtures.online import MODELS

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "examples" / "iris" / "pipelines.yaml"
TOKENS = ("first-token-0123456789", "second-token-9876543210")


def rule(view: str, rule: str | None = None, **options) -> dict:
    """A ``flask_add_url_rules`` entry for the lifecycle view ``view`` (POST)."""
    return {
        "__factory__": "pipeforge.server.add_url_rule",
        "rule": rule or "/" + view.replace("_", "-"),
        "view_func": f"pipeforge.server.{view}",
        "methods": ["POST"],
        **options,
    }


def online(tmp_path, **settings) -> dict:
    """The online entries (the test models, an SQLite store) with ``settings`` in ``online``."""
    store = {"__factory__": "pipeforge.online.SQLStore", "url": f"sqlite:///{tmp_path}/online.db"}
    return {"online_models": MODELS, "online": {"store": store, **settings}}


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """``make_app(pipelines=False, **entries)``: an app on the iris config with ``entries``.

    The fixture's lifecycle routes and ``security`` are dropped unless given; one model is
    stored (version 1).
    """
    monkeypatch.setenv("PIPEFORGE_OP_STORE", f"sqlite:///{tmp_path / 'ops.db'}")
    apps = []

    def make(pipelines: bool = False, **entries):
        entries.setdefault("flask_add_url_rules", None)
        entries.setdefault("security", None)
        files = [str(iris_config(tmp_path, name=f"config-{len(apps)}.py", **entries))]
        if pipelines:  # first: its relative paths are taken from its folder
            files.insert(0, str(PIPELINES))
        config = load_config(files, __mode__="predict")
        if not apps:
            training.fit(config["dataset_loader_train"], config["model"], config["model_persister"])
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["pipeforge"].stop()
        if "pipeforge_online" in app.extensions:
            app.extensions["pipeforge_online"].store.close()
        if "pipeforge_pipelines" in app.extensions:
            app.extensions["pipeforge_pipelines"].shutdown()
            app.extensions["pipeforge_pipelines"].store.dispose()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert set(response.json) == {"metadata"} and response.json["metadata"]["status"] == "ERROR"
    return response.json["metadata"]["error_message"]


# -- off by default -----------------------------------------------------------------------------


def test_by_default_nothing_writes_or_hands_out_data(make_app, tmp_path):
    client = make_app(pipelines=True, **online(tmp_path)).test_client()
    for path in ("/fit", "/update-model-cache", "/activate", "/delete"):
        error(client.post(path, json={"model_version": 1}), 404)
    error(client.post("/api/init", json={"flavor": "binary"}), 405)  # GET /api/init is open
    error(client.get("/api/model"), 404)
    error(client.get("/api/model/reg"), 404)
    body = pickle.dumps(MODELS)
    error(client.post("/api/model/x", data=body, content_type="application/octet-stream"), 404)
    error(client.delete("/api/model/reg"), 404)
    error(client.get("/api/stream/events"), 404)
    for action in ("load", "save"):
        error(client.post(f"/pipelines/train_iris/{action}"), 404)
    message = error(client.post("/pipelines/train_iris/main", json={"save": True}), 403)
    assert "pipelines_admin: {allow_save: true}" in message
    # what stays open still answers
    assert client.get("/api/init").json["flavor"] == "regression"
    assert client.get("/api/models").json["models"] == ["reg", "sk", "spam"]
    assert client.post("/pipelines/train_iris/main", json={}).status_code == 200
    assert client.get("/list").json["properties"]["active-model"] == "1"


# -- switched on without a guard: no app --------------------------------------------------------

SWITCHES = [
    ({"flask_add_url_rules": [rule("fit")]}, "flask_add_url_rules[0]", "POST /fit", "server_fit_decorators"),
    ({"flask_add_url_rules": [rule("update_model_cache")]}, "flask_add_url_rules[0]", "POST /update-model-cache", "update_model_cache_decorators"),
    ({"flask_add_url_rules": [rule("fit"), rule("delete", "/admin/delete")], "server_fit_decorators": ["tests.test_server_auth.requires_token"]}, "flask_add_url_rules[1]", "POST /admin/delete", "delete_decorators"),
    ({"online": {"allow_init": True}}, "online.allow_init", "POST /api/init", "online_admin_decorators"),
    ({"online": {"allow_upload": True}}, "online.allow_upload", "POST /api/model[/<name>]", "online_admin_decorators"),
    ({"online": {"allow_delete": True}}, "online.allow_delete", "DELETE /api/model/<name>", "online_admin_decorators"),
    ({"online": {"allow_download": True}}, "online.allow_download", "GET /api/model[/<name>]", "online_data_decorators"),
    ({"online": {"allow_events": True}}, "online.allow_events", "GET /api/stream/events", "online_data_decorators"),
    ({"pipelines_admin": {"allow_load": True}}, "pipelines_admin.allow_load", "POST /pipelines/<name>/load", "pipelines_admin_decorators"),
    ({"pipelines_admin": {"allow_save": True}}, "pipelines_admin.allow_save", "POST /pipelines/<name>/save", "pipelines_admin_decorators"),
]  # fmt: skip


@pytest.mark.parametrize(("entries", "key", "route", "guard_list"), SWITCHES)
def test_a_route_switched_on_without_a_guard_stops_the_app(
    make_app, tmp_path, entries, key, route, guard_list
):
    if "online" in entries:
        entries = {**online(tmp_path, **entries["online"])}
    with pytest.raises(ConfigError) as info:
        make_app(pipelines="pipelines_admin" in entries, **entries)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'config-0.py'}: {key}: {route}")
    assert f"is switched on without a guard: list one in {guard_list!r}" in message
    assert "security.unguarded" in message and "\n" not in message


def test_a_switch_must_be_true_or_false_and_security_must_be_known(make_app, tmp_path):
    with pytest.raises(ConfigError, match=r"online.allow_events: must be true or false; got 'yes'"):
        make_app(**online(tmp_path, allow_events="yes"))
    with pytest.raises(
        ConfigError, match=r"security.unguarded\[0\]: unknown route 'fitt'; did you mean 'fit'"
    ):
        make_app(security={"unguarded": ["fitt"]})
    with pytest.raises(ConfigError, match=r"pipelines_admin.allow_lod: unknown key 'allow_lod'"):
        make_app(pipelines=True, pipelines_admin={"allow_lod": True})
    with pytest.raises(ConfigError, match=r"security.trusted_origins\[0\]: must be an origin"):
        make_app(security={"trusted_origins": ["admin.example.com"]})
    with pytest.raises(
        ConfigError, match=r"flask_add_url_rules\[0\].methods: .* must not answer GET"
    ):
        make_app(flask_add_url_rules=[rule("activate", methods=["GET", "POST"])])


@pytest.mark.slow
def test_gunicorn_refuses_to_start_with_an_unguarded_route(tmp_path, gunicorn_server):
    path = iris_config(tmp_path, flask_add_url_rules=[rule("activate")], security=None)
    with pytest.raises(RuntimeError) as info:  # the fixture: gunicorn exited before answering
        gunicorn_server(path, workers=1)
    log = str(info.value)
    assert "gunicorn exited with status" in log
    assert (
        f"pipeforge cannot start the web service: {path}: flask_add_url_rules[0]: "
        "POST /activate is switched on without a guard" in log
    )


# -- the token guard ----------------------------------------------------------------------------


def test_token_guard_two_tokens_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_TOKENS", " ".join(TOKENS))
    client = make_app(
        flask_add_url_rules=[rule("activate")],
        activate_decorators=["pipeforge.guards.require_token"],
    ).test_client()
    refused = client.post("/activate", json={"model_version": 1})
    assert "send a bearer token" in error(refused, 401)
    assert refused.headers["WWW-Authenticate"] in (
        'Bearer realm="pipeforge"',
        "Bearer realm=pipeforge",
    )
    wrong = client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[0] + "x"))
    assert "not valid" in error(wrong, 401)
    assert "error=invalid_token" in wrong.headers["WWW-Authenticate"].replace('"', "")
    basic = {"Authorization": "Basic " + TOKENS[0]}
    error(client.post("/activate", json={"model_version": 1}, headers=basic), 401)
    for token in TOKENS:
        answer = client.post("/activate", json={"model_version": 1}, headers=bearer(token))
        assert answer.status_code == 200 and answer.json["model_version"] == 1


def test_a_rotated_token_file_is_picked_up(make_app, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# the admin tokens\n{TOKENS[0]}\n{TOKENS[1]}\n")
    guard = {"__factory__": "pipeforge.guards.TokenGuard", "env": None, "file": "tokens.txt"}
    client = make_app(
        flask_add_url_rules=[rule("activate")], activate_decorators=[guard]
    ).test_client()
    for token in TOKENS:  # both, while clients move to the second
        assert (
            client.post("/activate", json={"model_version": 1}, headers=bearer(token)).status_code
            == 200
        )
    tokens.write_text(f"{TOKENS[1]}\n")  # the first one retired, in place
    error(client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[0])), 401)
    assert (
        client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[1])).status_code
        == 200
    )
    replacement = tmp_path / "tokens.new"
    replacement.write_text(f"{TOKENS[0]}\n")
    replacement.replace(tokens)  # rotated by renaming a new file over it
    assert (
        client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[0])).status_code
        == 200
    )
    error(client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[1])), 401)


def test_the_file_named_by_the_variable_and_a_guard_without_tokens(make_app, tmp_path, monkeypatch):
    monkeypatch.delenv("PIPEFORGE_TOKENS", raising=False)
    monkeypatch.delenv("PIPEFORGE_TOKENS_FILE", raising=False)
    entries = {
        "flask_add_url_rules": [rule("activate")],
        "activate_decorators": ["pipeforge.guards.require_token"],
    }
    with pytest.raises(ConfigError) as info:
        make_app(**entries)
    assert str(info.value).endswith(
        "activate_decorators: the token guard has no token of at least 16 characters: put one "
        "in the environment variable PIPEFORGE_TOKENS or a file named by PIPEFORGE_TOKENS_FILE"
    )
    monkeypatch.setenv("PIPEFORGE_TOKENS", "short")
    with pytest.raises(ConfigError, match="has no token of at least 16 characters"):
        make_app(**entries)
    monkeypatch.setenv("PIPEFORGE_TOKENS_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read its token file .*missing"):
        make_app(**entries)
    (tmp_path / "secret").write_text(TOKENS[1])
    monkeypatch.setenv("PIPEFORGE_TOKENS_FILE", str(tmp_path / "secret"))
    client = make_app(**entries).test_client()
    assert (
        client.post("/activate", json={"model_version": 1}, headers=bearer(TOKENS[1])).status_code
        == 200
    )


def test_guarded_online_and_pipelines_routes(make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEFORGE_TOKENS", TOKENS[0])
    token = ["pipeforge.guards.require_token"]
    client = make_app(
        pipelines=True,
        **online(tmp_path, allow_download=True, allow_events=True, allow_delete=True),
        online_admin_decorators=token,
        online_data_decorators=token,
        pipelines_admin={"allow_load": True, "allow_save": True},
        pipelines_admin_decorators=token,
    ).test_client()
    for method, path in [
        ("get", "/api/model"),
        ("get", "/api/stream/events"),
        ("delete", "/api/model/spam"),
        ("post", "/pipelines/train_iris/save"),
        ("post", "/pipelines/predict_iris/load"),
    ]:
        error(getattr(client, method)(path), 401)
    error(client.post("/pipelines/train_iris/main", json={"save": True}), 401)
    assert client.get("/api/models").json["models"] == ["reg", "sk", "spam"]  # nothing deleted
    assert pickle.loads(client.get("/api/model/reg", headers=bearer(TOKENS[0])).data)
    assert client.delete("/api/model/spam", headers=bearer(TOKENS[0])).status_code == 204
    saved = client.post(
        "/pipelines/train_iris/main", json={"save": True}, headers=bearer(TOKENS[0])
    )
    assert saved.status_code == 200 and len(saved.json["saved"]) == 3
    loaded = client.post("/pipelines/predict_iris/load", headers=bearer(TOKENS[0]))
    assert loaded.status_code == 200 and loaded.json["is_loaded"]


# -- unguarded on purpose, Palladium configs: one warning per route -----------------------------


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pipeforge.guards.rule"]


def test_explicitly_unguarded_routes_start_with_one_warning_each(make_app, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="pipeforge.guards.rule")
    client = make_app(
        flask_add_url_rules=[rule("activate")],
        **online(tmp_path, allow_events=True, allow_download=True),
        security={"unguarded": ["activate", "online.events", "online.download"]},
    ).test_client()
    said = _warnings(caplog)
    assert len(said) == 3
    assert said[0].startswith(
        "POST /activate runs without a guard: security.unguarded names 'activate'"
    )
    assert sum("GET /api/model[/<name>] runs without a guard" in line for line in said) == 1
    assert client.post("/activate", json={"model_version": 1}).status_code == 200
    assert client.get("/api/model").status_code == 200


def test_a_palladium_config_starts_with_one_warning_per_unguarded_route(make_app, caplog):
    caplog.set_level(logging.WARNING, logger="pipeforge.guards.rule")
    routes = [
        {**rule("fit"), "__factory__": "palladium.server.add_url_rule", "view_func": "palladium.server.fit"},
        {**rule("activate"), "__factory__": "palladium.server.add_url_rule", "view_func": "palladium.server.activate"},
    ]  # fmt: skip
    client = make_app(flask_add_url_rules=routes).test_client()
    said = _warnings(caplog)
    assert said == [
        "flask_add_url_rules[0]: POST /fit runs without a guard, as in Palladium; list a guard in "
        "'server_fit_decorators' (e.g. pipeforge.guards.require_token) or name 'fit' in "
        "security.unguarded",
        "flask_add_url_rules[1]: POST /activate runs without a guard, as in Palladium; list a "
        "guard in 'activate_decorators' (e.g. pipeforge.guards.require_token) or name 'activate' "
        "in security.unguarded",
    ]
    # Palladium's clients send model_version in a form or the query string
    assert client.post("/activate", data={"model_version": "1"}).json["model_version"] == 1
    assert client.post("/activate?model_version=1").status_code == 200
    assert client.post("/activate", json={"model_version": 1}).status_code == 200
    foreign = {"Origin": "https://evil.example"}
    assert "another site" in error(
        client.post("/activate", data={"model_version": "1"}, headers=foreign), 403
    )
    error(client.post("/activate", data="model_version=1", content_type="text/plain"), 415)


def test_docs_table_is_the_rule():
    text = (ROOT / "docs" / "security.md").read_text()
    table = text.split("## The table", 1)[1].split("\n\n")[2]
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in table.splitlines()[2:]
    ]
    assert [row[0] for row in rows] == [route.name for route in guards.GUARDED_ROUTES]
    for row, route in zip(rows, guards.GUARDED_ROUTES, strict=True):
        assert row[2] == "off" and row[4] == route.guard_list, row
        flag = route.switch.partition(".")[2]
        assert f"{flag}: true" in row[3] if flag else "flask_add_url_rules" in row[3], row
    yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])  # the first example parses
