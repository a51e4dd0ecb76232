"""Aliases, tags and traffic splits in every model store, the model cache following them, the commands.

One contract over Database (SQLite and PostgreSQL), File and FileLike; then
the cache (every alias a server serves, moved under it), then ``pf-admin
alias|tag|traffic|promote`` and ``pf-list`` as a user runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sklearn.dummy import DummyClassifier

from pipeforge.errors import (
    ActiveModelError,
    RequestError,
    UnknownAliasError,
    UnknownVersionError,
)
from pipeforge.persistence import CachedUpdatePersister, Database, File, FileIO, FileLike
from pipeforge.persistence.admin import delete_version
from pipeforge.release import aliases as release
from pipeforge.release.promotion import PromotionRefused, promote

STORES = ["sqlite", "postgres", "file", "filelike"]


def constant(value: int) -> DummyClassifier:
    """A model that always answers ``value`` (which version answered is plain to see)."""
    return DummyClassifier(strategy="constant", constant=value).fit([[0.0], [1.0]], [0, 1])


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    """A fresh persister of each kind, with versions 1 (active) and 2 stored."""
    kind = request.param
    if kind == "sqlite":
        persister = Database(url=f"sqlite:///{tmp_path}/models.db")
    elif kind == "postgres":
        persister = Database(url=request.getfixturevalue("postgres_database_url"))
    elif kind == "file":
        persister = File(path=str(tmp_path / "model-{version}.pkl"))
    else:
        persister = FileLike(str(tmp_path / "m-{version}"), FileIO())
    persister.activate(persister.write(constant(1)))
    persister.write(constant(0))
    return persister


def test_an_alias_names_one_version_and_moves(store):
    assert release.set_alias(store, "champion", 1) == 1
    assert release.set_alias(store, "challenger", "2") == 2
    assert release.aliases(store) == {"active": 1, "challenger": 2, "champion": 1}
    release.set_alias(store, "champion", "challenger")  # an alias may name the version
    assert release.aliases(store)["champion"] == 2
    assert release.resolve_version(store, "champion") == 2
    assert release.resolve_version(store, "7") == 7
    assert release.read_alias(store, "champion").predict([[0.0]])[0] == 0
    assert release.delete_alias(store, "challenger") == 2
    assert "challenger" not in release.aliases(store)
    # the active version is the alias "active": every existing command means it
    release.set_alias(store, "active", 2)
    assert store.list_properties()["active-model"] == "2"


def test_an_alias_needs_a_stored_version_and_a_good_name(store):
    with pytest.raises(UnknownVersionError):
        release.set_alias(store, "champion", 9)
    with pytest.raises(UnknownAliasError, match="no version carries the alias 'nope'"):
        release.resolve_version(store, "nope")
    with pytest.raises(RequestError, match="starts with a letter"):
        release.set_alias(store, "9lives", 1)
    with pytest.raises(RequestError, match="cannot be removed"):
        release.delete_alias(store, "active")
    assert release.aliases(store) == {"active": 1}


def test_deleting_a_version_drops_its_aliases_and_needs_force(store):
    release.set_alias(store, "challenger", 2)
    with pytest.raises(ActiveModelError, match="carries the alias challenger"):
        delete_version(store, 2)
    delete_version(store, 2, force=True)
    assert release.aliases(store) == {"active": 1}


def test_tags_are_set_and_removed(store):
    assert release.set_tags(store, 2, {"reviewed": "yes", "owner": "ann"}) == {
        "reviewed": "yes",
        "owner": "ann",
    }
    assert release.set_tags(store, 2, {"owner": None}) == {"reviewed": "yes"}
    listed = {m["version"]: m for m in store.list_models()}
    assert release.tags_of(listed[2]) == {"reviewed": "yes"}
    assert release.tags_of(listed[1]) == {}
    with pytest.raises(RequestError, match="tag key"):
        release.set_tags(store, 2, {"bad key": "x"})


def test_a_traffic_split_is_stored_for_a_service(store):
    release.set_alias(store, "champion", 1)
    release.set_alias(store, "challenger", 2)
    split = release.set_traffic(store, "/predict", {"champion": 90, "challenger": 10})
    assert split == {"challenger": 10.0, "champion": 90.0}
    assert release.traffic_in(store.list_properties(), "/predict") == split
    with pytest.raises(UnknownAliasError):
        release.set_traffic(store, "/predict", {"champion": 50, "ghost": 50})
    with pytest.raises(RequestError, match="at least 0"):
        release.set_traffic(store, "/predict", {"champion": -1})
    assert release.traffic_in(store.list_properties(), "/predict") == split  # unchanged
    release.set_traffic(store, "/predict", None)
    assert release.traffic_in(store.list_properties(), "/predict") is None


def test_the_cache_holds_every_served_alias_and_follows_moves(tmp_path):
    impl = Database(url=f"sqlite:///{tmp_path}/models.db")
    impl.activate(impl.write(constant(1)))
    impl.write(constant(0))
    release.set_alias(impl, "challenger", 2)
    cache = CachedUpdatePersister(impl)
    cache.serve_aliases(["challenger"], traffic=True)
    cache.refresh()
    first = cache.read_alias("challenger")
    assert first.__metadata__["version"] == 2
    assert cache.read_alias("active") is cache.read()
    # another process moves the alias: this cache follows on its next refresh
    release.set_alias(Database(url=f"sqlite:///{tmp_path}/models.db"), "challenger", 1)
    assert cache.read_alias("challenger") is first  # not before
    assert cache.refresh() is True
    moved = cache.read_alias("challenger")
    assert moved.__metadata__["version"] == 1
    assert moved is cache.read()  # one version, one model object
    # an alias a stored split names is held too
    release.set_alias(impl, "beta", 2)
    release.set_traffic(impl, "/predict", {"challenger": 1, "beta": 1})
    cache.refresh()
    assert cache.read_alias("beta").__metadata__["version"] == 2
    assert release.traffic_in(cache.cached_properties(), "/predict") == {
        "beta": 1.0,
        "challenger": 1.0,
    }
    with pytest.raises(UnknownAliasError):
        cache.read_alias("ghost")


def test_promote_weighs_live_scores(tmp_path):
    store = Database(url=f"sqlite:///{tmp_path}/models.db")
    store.activate(store.write(constant(1)))
    store.write(constant(0))
    release.set_alias(store, "champion", 1)
    release.set_alias(store, "challenger", 2)
    good = {"score": 0.9, "n": 300, "metric": "Accuracy", "higher_is_better": True}
    fair = {"score": 0.85, "n": 300, "metric": "Accuracy", "higher_is_better": True}
    with pytest.raises(PromotionRefused, match="better by -0.0500") as refused:
        promote(store, "challenger", scores={2: fair, 1: good}, margin=0.01)
    assert refused.value.decision.champion == good
    with pytest.raises(PromotionRefused, match="at least 500 needed"):
        promote(store, "challenger", scores={2: good, 1: fair}, min_feedback=500)
    assert release.aliases(store)["champion"] == 1  # refusals changed nothing
    decision = promote(store, "challenger", scores={2: good, 1: fair}, margin=0.01)
    assert decision.promoted and decision.previous == 1 and decision.version == 2
    assert release.aliases(store)["champion"] == 2
    errors = {"score": 3.0, "n": 50, "metric": "MAE", "higher_is_better": False}
    worse = {"score": 4.0, "n": 50, "metric": "MAE", "higher_is_better": False}
    release.set_alias(store, "champion", 1)
    assert promote(store, "challenger", scores={2: errors, 1: worse}, margin=0.5).promoted


# -- the commands ----------------------------------------------------------------------


def _run(args: list[str], config, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPTS, *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=config.parent,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


# the installed pf-admin and pf-list scripts' entry points, run as the scripts run them
_SCRIPTS = (
    "import sys; from pipeforge.cli.models import admin_main; "
    "from pipeforge.cli.listing import list_main; "
    "name, *rest = sys.argv[1:]; "
    "sys.exit({'pf-admin': admin_main, 'pf-list': list_main}[name](rest))"
)


@pytest.fixture
def config(tmp_path):
    store = Database(url=f"sqlite:///{tmp_path}/models.db")
    store.activate(store.write(constant(1)))
    store.write(constant(0))
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_persister:\n"
        "  __factory__: pipeforge.persistence.Database\n"
        "  url: sqlite:///models.db\n"
        "predict_service:\n"
        "  __factory__: pipeforge.server.PredictService\n"
        "  mapping: [[x, float]]\n"
        "  traffic: {champion: 90, challenger: 10}\n"
    )
    return path


def test_pf_admin_release_commands_and_pf_list(config):
    assert (
        "Alias champion -> version 1" in _run(["pf-admin", "alias", "champion", "1"], config).stdout
    )
    _run(["pf-admin", "alias", "challenger", "2"], config)
    assert "reviewed=yes" in _run(["pf-admin", "tag", "2", "reviewed=yes", "by=ann"], config).stdout
    _run(["pf-admin", "tag", "--delete", "2", "by"], config)
    said = _run(["pf-admin", "traffic", "/predict", "champion=70", "challenger=30"], config)
    assert "challenger 30, champion 70" in said.stdout
    listed = json.loads(_run(["pf-list", "--json"], config).stdout)
    assert listed["aliases"] == {"active": 1, "challenger": 2, "champion": 1}
    assert listed["traffic"] == {"/predict": {"challenger": 30.0, "champion": 70.0}}
    by_version = {m["version"]: m for m in listed["models"]}
    assert by_version[2]["tags"] == {"reviewed": "yes"}
    assert by_version[1]["aliases"] == ["active", "champion"]
    text = _run(["pf-list"], config).stdout
    assert "version 1 (active, champion)" in text and "version 2 (challenger)" in text
    assert "/predict: challenger 30, champion 70" in text
    # promote on evidence: no prediction log, so no live score: refused, exit 1
    refused = _run(["pf-admin", "promote", "challenger", "--min-feedback", "10"], config, False)
    assert refused.returncode == 1
    assert "no live score" in refused.stdout and "not promoted" in refused.stdout
    done = _run(["pf-admin", "promote", "challenger"], config)
    assert "promoted: " in done.stdout
    assert json.loads(_run(["pf-list", "--json"], config).stdout)["aliases"]["champion"] == 2
    _run(["pf-admin", "traffic", "--reset", "predict_service"], config)
    assert json.loads(_run(["pf-list", "--json"], config).stdout)["traffic"] == {}
    _run(["pf-admin", "alias", "--delete", "challenger"], config)


def test_pf_admin_release_mistakes_are_one_line(config):
    unknown = _run(["pf-admin", "alias", "champion", "9"], config, False)
    assert unknown.returncode == 1 and "no model with version 9" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    ghost = _run(["pf-admin", "traffic", "/predict", "champion=1", "ghost=1"], config, False)
    assert ghost.returncode == 1 and "no version carries the alias 'champion'" in ghost.stderr
    weight = _run(["pf-admin", "traffic", "/predict", "champion"], config, False)
    assert weight.returncode == 2 and "name=value" in weight.stderr
    service = _run(["pf-admin", "traffic", "/nope", "champion=1"], config, False)
    assert service.returncode == 2 and "no predict service '/nope'" in service.stderr
