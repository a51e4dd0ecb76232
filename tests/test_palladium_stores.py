"""Model stores the real Palladium 1.2.4.1 wrote, seen, imported, tested and served by pipeforge.

The stores come from ``tests/fixtures/palladium.py``: Palladium's own
``pld-fit`` and ``pld-admin`` wrote them, and each test gets its own copy
together with the unchanged Palladium config (``palladium.*`` names). The
scripts run through their ``main(argv)`` with ``PALLADIUM_CONFIG`` set, as
a Palladium user's shell would have it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from pipeforge import __version__
from pipeforge.cli import scripts
from pipeforge.persistence import Database

# Palladium pickled its models with scikit-learn 1.2.2; today's one loads them and says so.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning")

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "file"]
SETOSA = {"sepal length": 5.1, "sepal width": 3.5, "petal length": 1.4, "petal width": 0.2}


@pytest.fixture
def palladium_project(palladium_store, monkeypatch):
    """``palladium_project(kind)``: a copy of a Palladium store, its config in PALLADIUM_CONFIG."""
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.delenv("PIPEFORGE_DEBUG", raising=False)

    def make(kind: str):
        store = palladium_store(kind)
        monkeypatch.setenv("PALLADIUM_CONFIG", str(store.config))
        monkeypatch.chdir(store.folder)
        return store

    return make


def run(main, argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str, script: str) -> str:
    """The one line a script printed on failure (logging may precede it)."""
    lines = [line for line in err.splitlines() if line.startswith(f"{script}: error:")]
    assert len(lines) == 1, err
    return lines[0]


def listing(capsys) -> dict:
    code, out, err = run(scripts.list_main, ["--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def versions_text(versions) -> str:
    return ", ".join(str(v) for v in versions)


# -- before pf-upgrade -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_unimported_palladium_store_is_named_not_taken_for_empty(
    kind, palladium_project, capsys
):
    store = palladium_project(kind)
    before = store.palladium_content()
    for script, main, argv in [
        ("pf-list", scripts.list_main, []),
        ("pf-fit", scripts.fit_main, []),
        ("pf-test", scripts.test_main, []),
        ("pf-admin", scripts.admin_main, ["activate", "3"]),
    ]:
        code, out, err = run(main, argv, capsys)
        assert code == 1, (script, out, err)
        line = error_line(err, script)
        assert "written by Palladium 1.2.4.1" in line
        assert f"versions {versions_text(store.versions)}; active: {store.active}" in line
        assert "run pf-upgrade" in line
        assert "No models" not in out
    assert store.palladium_content() == before


# -- pf-upgrade ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_pf_upgrade_imports_versions_metadata_and_active_model(kind, palladium_project, capsys):
    store = palladium_project(kind)
    before = store.palladium_content()

    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert out.startswith("Ran upgrade steps:")
    assert f"versions {versions_text(store.versions)} (active: {store.active})" in out

    imported = listing(capsys)
    digests = [m.pop("model_digest") for m in imported["models"]]  # pf-upgrade adds them
    # pf-list adds each version's aliases and live score (no prediction log here: none)
    aliases = {m["version"]: m.pop("aliases") for m in imported["models"]}
    assert {v: a for v, a in aliases.items() if a} == {int(store.active): ["active"]}
    assert [m.pop("live_score") for m in imported["models"]] == [None] * len(aliases)
    assert all(d.startswith("sha256:") for d in digests) and len(set(digests)) == len(digests)
    assert imported["models"] == store.listing["models"]
    assert imported["properties"]["active-model"] == store.active
    assert imported["properties"]["db-version"] == __version__

    # idempotent: nothing more to import, nothing changed
    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert (code, out) == (0, "Nothing to upgrade\n"), err
    again = listing(capsys)
    assert [m.pop("model_digest") for m in again["models"]] == digests
    assert {m["version"]: m.pop("aliases") for m in again["models"]} == aliases
    assert [m.pop("live_score") for m in again["models"]] == [None] * len(aliases)
    assert again == imported

    # Palladium's models score as Palladium scored them
    newest = store.listing["models"][-1]
    code, out, err = run(scripts.test_main, [f"--model-version={newest['version']}"], capsys)
    assert code == 0, err
    assert out == f"score: {newest['score_test']:.4f}\n"
    code, out, err = run(scripts.test_main, [], capsys)
    assert code == 0 and out.startswith("score: "), err

    # new versions continue after Palladium's highest
    code, out, err = run(scripts.fit_main, [], capsys)
    assert code == 0, err
    assert out.strip().endswith(f"Wrote model with version {max(store.versions) + 1}")
    assert listing(capsys)["properties"]["active-model"] == str(max(store.versions) + 1)

    # Palladium's tables or files are untouched, and Palladium still reads them (rollback)
    assert store.palladium_content() == before
    assert store.palladium_listing() == store.listing


@pytest.mark.slow
def test_a_number_palladium_used_is_never_handed_out_again(palladium_project, capsys):
    """Palladium's delete keeps the chunks; pipeforge counts their number as used."""
    store = palladium_project("sqlite")
    store.venv.run("pld-admin", "delete", "3", config=store.config)

    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert "versions 2 (active: 2)" in out
    code, out, err = run(scripts.fit_main, [], capsys)
    assert code == 0, err
    assert out.strip().endswith("Wrote model with version 4")


@pytest.mark.slow
def test_models_palladium_writes_after_the_import_follow_on_the_next_upgrade(
    palladium_project, capsys
):
    """Rolled back to Palladium for a while: its new model comes over; a clash is reported."""
    store = palladium_project("sqlite")
    assert run(scripts.upgrade_main, [], capsys)[0] == 0

    store.venv.run("pld-fit", config=store.config)  # Palladium's version 4, activated
    code, _, err = run(scripts.list_main, [], capsys)
    assert code == 1
    assert "(versions 4; active: 4)" in error_line(err, "pf-list")
    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert "versions 4 (active: 4)" not in out  # pipeforge's own active model (2) stays
    assert "versions 4" in out
    assert [m["version"] for m in listing(capsys)["models"]] == [2, 3, 4]

    assert run(scripts.fit_main, [], capsys)[1].strip().endswith("version 5")
    store.venv.run("pld-fit", config=store.config)  # Palladium's own version 5: a clash
    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert "left out Palladium 1.2.4.1's versions 5" in out
    models = listing(capsys)["models"]
    assert [m["version"] for m in models] == [2, 3, 4, 5]
    assert "library_versions" in models[-1]  # pipeforge's version 5, not Palladium's


# -- serving -----------------------------------------------------------------------


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_served_by_gunicorn_once_imported(kind, palladium_project, gunicorn_server, capsys):
    store = palladium_project(kind)
    url = gunicorn_server(store.config)
    predict = f"{url}/predict?{urllib.parse.urlencode(SETOSA)}"

    for address in (f"{url}/alive", predict, f"{url}/list"):
        status, body = get(address)
        assert status == 503, body
        message = body["metadata"]["error_message"]
        assert "written by Palladium 1.2.4.1" in message and "run pf-upgrade" in message

    assert run(scripts.upgrade_main, [], capsys)[0] == 0
    deadline, answers = time.monotonic() + 60, []
    while len(answers) < 8 and time.monotonic() < deadline:
        # each worker's model cache refreshes every second: wait until both serve
        answer = get(predict)
        answers = [*answers, answer] if answer[0] == 200 else []
        time.sleep(0.1)
    assert [(status, body["result"]) for status, body in answers] == [(200, "Iris-setosa")] * 8
    status, body = get(f"{url}/alive")
    assert status == 200, body
    assert body["model"]["metadata"].pop("model_digest").startswith("sha256:")
    assert body["model"]["metadata"] == store.listing["models"][store.versions.index(2)]


# -- the upgrade defects ----------------------------------------------------------


def test_pf_upgrade_stamps_only_versions_it_reached(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.py"
    url = f"sqlite:///{tmp_path / 'models.db'}"
    config.write_text(
        repr({"model_persister": {"__factory__": "pipeforge.persistence.Database", "url": url}})
    )
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    monkeypatch.delenv("PIPEFORGE_DEBUG", raising=False)
    Database(url).list_models()  # the store exists: pf-list reads it, never creates it

    code, out, err = run(scripts.upgrade_main, ["--from=0.1", "--to=0.2"], capsys)
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"pf-upgrade: error: cannot upgrade the model store to 0.2: the installed pipeforge is "
        f"{__version__}; install pipeforge 0.2 or newer first, or leave out --to"
    )
    assert listing(capsys)["properties"]["db-version"] == __version__

    code, out, err = run(scripts.upgrade_main, ["--from=0.0.1", "--to=0.0.5"], capsys)
    assert (code, out) == (0, "Nothing to upgrade\n"), err
    assert listing(capsys)["properties"]["db-version"] == __version__
