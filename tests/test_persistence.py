"""The model persisters: one contract suite over every implementation, then the specifics."""

from __future__ import annotations

import copy
import functools
import json
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import pipeforge
from pipeforge.errors import (
    ConfigError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    UnknownVersionError,
)
from pipeforge.persistence import CachedUpdatePersister, Database, File
from pipeforge.persistence.upgrade import UpgradeSteps
from pipeforge.process_store import ProcessStore

PERSISTERS = ["sqlite", "postgres", "file"]


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@functools.cache
def _fit(C: float) -> LogisticRegression:
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(C=C, max_iter=500).fit(X, y)


def fitted(iris, C=1.0):
    """A fitted model of its own (fitting once per C keeps the suite fast)."""
    return copy.deepcopy(_fit(C))


@dataclass
class Store:
    """One storage location and how to build persisters on it (as other processes would)."""

    kind: str
    location: str
    options: dict = field(default_factory=dict)

    def make(self, **options):
        kw = {**self.options, **options}
        if self.kind == "file":
            return File(self.location, **kw)
        return Database(self.location, **kw)

    def count_chunks(self, version=None) -> int:
        engine = sa.create_engine(self.location)
        query = "SELECT COUNT(*) FROM pipeforge_model_chunks"
        if version is not None:
            query += f" WHERE version = {int(version)}"
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(query)).scalar_one()
        finally:
            engine.dispose()

    def edit_metadata(self, version: int, change) -> None:
        """Change stored metadata behind the persister's back, as an old store would have it."""
        if self.kind == "file":
            path = self.location.replace("{version}", "metadata").rsplit(".", 1)[0] + ".json"
            with open(path) as handle:
                entries = json.load(handle)
            for entry in entries:
                if entry["version"] == version:
                    change(entry)
            with open(path, "w") as handle:
                json.dump(entries, handle)
            return
        engine = sa.create_engine(self.location)
        try:
            with engine.begin() as conn:
                table = "pipeforge_models"
                text = conn.execute(
                    sa.text(f"SELECT metadata FROM {table} WHERE version = :v"), {"v": version}
                ).scalar_one()
                entry = json.loads(text)
                change(entry)
                conn.execute(
                    sa.text(f"UPDATE {table} SET metadata = :m WHERE version = :v"),
                    {"m": json.dumps(entry), "v": version},
                )
        finally:
            engine.dispose()

    def record_db_version(self, version: str) -> None:
        """Record another store format version behind the persister's back (an older store)."""
        if self.kind == "file":
            path = self.location.replace("{version}", "properties").rsplit(".", 1)[0] + ".json"
            props = {}
            if os.path.exists(path):
                with open(path) as handle:
                    props = json.load(handle)
            props["db-version"] = version
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                json.dump(props, handle)
            return
        engine = sa.create_engine(self.location)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE pipeforge_properties SET value = :v WHERE name = 'db-version'"),
                    {"v": version},
                )
        finally:
            engine.dispose()


def _make_store(kind, request, tmp_path) -> Store:
    if kind == "sqlite":
        return Store(kind, f"sqlite:///{tmp_path / 'models.db'}")
    if kind == "postgres":
        return Store(kind, request.getfixturevalue("postgres_database_url"))
    return Store(kind, str(tmp_path / "models" / "model-{version}.pickle"))


@pytest.fixture(params=PERSISTERS)
def store(request, tmp_path):
    return _make_store(request.param, request, tmp_path)


@pytest.fixture
def persister(store):
    return store.make()


# ---------------------------------------------------------------- contract suite
def test_constructor_stores_arguments_only(tmp_path):
    missing = tmp_path / "not" / "there"
    Database(f"sqlite:///{missing / 'm.db'}", chunk_size=-1)
    File(str(missing / "model-{version}.pickle"))
    assert not missing.exists()


def test_write_returns_new_inactive_versions(persister, iris):
    assert persister.write(fitted(iris)) == 1
    assert persister.write(fitted(iris)) == 2
    assert "active-model" not in persister.list_properties()
    with pytest.raises(NoModelError) as info:
        persister.read()
    assert "pf-admin activate" in str(info.value)


def test_write_annotates_metadata(persister, iris):
    import platform

    import sklearn

    import pipeforge

    model = fitted(iris)
    version = persister.write(model)
    meta = model.__metadata__
    assert meta["version"] == version
    assert meta["train_timestamp"].endswith("+00:00")
    assert meta["library_versions"] == {
        "pipeforge": pipeforge.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }
    [listed] = persister.list_models()
    assert listed == meta


def test_existing_train_timestamp_is_kept(persister, iris):
    model = fitted(iris)
    model.__metadata__ = {"train_timestamp": "2020-01-02T03:04:05+00:00", "score_test": 0.9}
    persister.write(model)
    [listed] = persister.list_models()
    assert listed["train_timestamp"] == "2020-01-02T03:04:05+00:00"
    assert listed["score_test"] == 0.9


def test_read_by_version_and_active(persister, iris):
    X, _ = iris
    first, second = fitted(iris, C=0.01), fitted(iris, C=10.0)
    persister.write(first)
    persister.write(second)
    persister.activate(2)
    assert persister.read().__metadata__["version"] == 2
    for version in (1, "1", " 1 "):
        loaded = persister.read(version)
        assert loaded.__metadata__["version"] == 1
        assert (loaded.predict_proba(X) == first.predict_proba(X)).all()
    persister.activate("1")
    assert persister.list_properties()["active-model"] == "1"
    assert persister.read().__metadata__["version"] == 1


def test_list_models_oldest_first_and_properties(persister, iris):
    for _ in range(3):
        persister.write(fitted(iris))
    persister.activate(2)
    assert [m["version"] for m in persister.list_models()] == [1, 2, 3]
    assert all(isinstance(m["version"], int) for m in persister.list_models())
    props = persister.list_properties()
    assert props["active-model"] == "2"
    assert props["db-version"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())


@pytest.mark.parametrize("operation", ["read", "activate", "delete"])
def test_unknown_version_has_one_wording(persister, iris, operation):
    persister.write(fitted(iris))
    persister.write(fitted(iris))
    with pytest.raises(UnknownVersionError) as info:
        getattr(persister, operation)(7)
    assert str(info.value) == "no model with version 7 (available versions: 1, 2)"
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownVersionError) as info:
        getattr(persister, operation)("7")
    assert str(info.value) == "no model with version 7 (available versions: 1, 2)"
    with pytest.raises(UnknownVersionError) as info:
        getattr(persister, operation)("latest")
    assert str(info.value) == "no model with version 'latest' (available versions: 1, 2)"


def test_delete_and_versions_never_reused(persister, iris):
    for _ in range(3):
        persister.write(fitted(iris))
    persister.activate(3)
    persister.delete(3)
    assert "active-model" not in persister.list_properties()
    with pytest.raises(NoModelError):
        persister.read()
    assert [m["version"] for m in persister.list_models()] == [1, 2]
    assert persister.write(fitted(iris)) == 4
    persister.delete(1)
    persister.delete(2)
    persister.delete(4)
    assert persister.list_models() == []
    assert persister.write(fitted(iris)) == 5


@pytest.mark.parametrize("poison", [threading.Lock, lambda: lambda x: x])
def test_failed_write_leaves_nothing(store, persister, iris, poison):
    good = fitted(iris)
    persister.write(good)
    persister.activate(1)
    bad = fitted(iris)
    bad.__metadata__ = {"note": "kept"}
    bad.poison = poison()
    with pytest.raises(ModelWriteError, match="^cannot store model: "):
        persister.write(bad)
    assert bad.__metadata__ == {"note": "kept"}
    assert [m["version"] for m in persister.list_models()] == [1]
    assert persister.read().__metadata__["version"] == 1
    if store.kind == "file":
        folder = os.path.dirname(store.location)
        assert sorted(os.listdir(folder)) == [
            "model-1.pickle",
            "model-lock.lock",
            "model-metadata.json",
            "model-properties.json",
        ]
    else:
        assert store.count_chunks() == store.count_chunks(1) > 0
    assert persister.write(good) >= 2


def test_read_warns_on_library_version_mismatch(store, persister, iris):
    import sklearn

    persister.write(fitted(iris))
    store.edit_metadata(1, lambda m: m["library_versions"].update({"scikit-learn": "0.0.1"}))
    with pytest.warns(UserWarning, match="scikit-learn 0.0.1") as record:
        persister.read(1)
    assert f"scikit-learn {sklearn.__version__}" in str(record[0].message)


@pytest.mark.parametrize("options", [{"pickler": "joblib"}, {"compress": 0}, {"compress": 9}])
def test_serialisation_options_round_trip(store, iris, options):
    X, _ = iris
    model = fitted(iris)
    version = store.make(**options).write(model)
    # a persister with default options reads what the other one wrote
    loaded = store.make().read(version)
    assert (loaded.predict_proba(X) == model.predict_proba(X)).all()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"compress": 12}, "parameter 'compress' of {name} must be a zlib level"),
        ({"compress": "fast"}, "parameter 'compress' of {name} must be a zlib level"),
        ({"pickler": "dill"}, "parameter 'pickler' of {name} must be one of joblib, pickle"),
    ],
)
def test_bad_parameters_fail_at_first_use(store, options, message):
    persister = store.make(**options)
    with pytest.raises(ConfigError, match=message.format(name=type(persister).__name__)):
        persister.list_models()


def test_upgrade_records_db_version(store, persister):
    import pipeforge

    assert persister.list_properties()["db-version"] == pipeforge.__version__
    assert persister.upgrade() == []
    assert persister.list_properties()["db-version"] == pipeforge.__version__


def test_upgrade_runs_registered_steps_in_order(store):
    base = type(store.make())
    ran = []

    class Upgradable(base):
        upgrade_steps = UpgradeSteps()

    @Upgradable.upgrade_steps.add("0.0.3")
    def to_0_0_3(persister):
        ran.append(("0.0.3", persister.list_properties()["db-version"]))

    @Upgradable.upgrade_steps.add("0.0.2")
    def to_0_0_2(persister):
        ran.append(("0.0.2", persister.list_properties()["db-version"]))

    persister = Upgradable(store.location)
    persister.list_properties()  # a store that an older pipeforge wrote
    store.record_db_version("0.0.1")
    assert persister.upgrade(to_version="0.0.3") == ["0.0.2", "0.0.3"]
    assert ran == [("0.0.2", "0.0.1"), ("0.0.3", "0.0.1")]
    assert persister.list_properties()["db-version"] == "0.0.3"
    assert persister.upgrade(to_version="0.0.3") == []
    assert persister.upgrade(from_version="0.0.2", to_version="0.0.3") == ["0.0.3"]
    assert persister.upgrade() == []
    assert persister.list_properties()["db-version"] == pipeforge.__version__


def test_upgrade_never_stamps_a_version_it_did_not_reach(store, persister):
    """``--to`` above the installed pipeforge is refused; below the store's version, no stamp."""
    from pipeforge.errors import UsageError

    with pytest.raises(UsageError, match=r"the installed pipeforge is 0\.1\.0"):
        persister.upgrade(from_version="0.1", to_version="0.2")
    assert persister.list_properties()["db-version"] == pipeforge.__version__
    assert persister.upgrade(from_version="0.0.1", to_version="0.0.5") == []
    assert persister.list_properties()["db-version"] == pipeforge.__version__


def _write_concurrently(store, count, barrier, results):
    persister = store.make()
    model = LogisticRegression()
    barrier.wait(timeout=60)
    results.put([persister.write(model) for _ in range(count)])


@pytest.mark.slow
def test_processes_writing_at_once_get_distinct_versions(store):
    store.make().list_models()  # create the store first, as pf-fit would have
    context = multiprocessing.get_context("fork")
    workers, count = 4, 5
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_write_concurrently, args=(store, count, barrier, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    versions = [v for _ in processes for v in results.get(timeout=120)]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert sorted(versions) == list(range(1, workers * count + 1))
    assert [m["version"] for m in store.make().list_models()] == sorted(versions)


# ---------------------------------------------------------------- Database only
@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request, tmp_path):
    return _make_store(request.param, request, tmp_path)


def test_database_stores_in_chunks_and_delete_removes_them(sql_store, iris):
    X, _ = iris
    persister = sql_store.make(chunk_size=100)
    model = fitted(iris)
    persister.write(model)
    persister.write(model)
    assert sql_store.count_chunks(1) > 5
    assert (persister.read(1).predict(X) == model.predict(X)).all()
    persister.delete(1)
    assert sql_store.count_chunks(1) == 0
    persister.delete(2)
    assert sql_store.count_chunks() == 0


def test_database_table_postfix_keeps_stores_apart(sql_store, iris):
    first, second = sql_store.make(), sql_store.make(table_postfix="_b")
    first.write(fitted(iris))
    assert second.list_models() == []
    assert second.write(fitted(iris)) == 1


@pytest.mark.parametrize(
    "options, message",
    [
        ({"chunk_size": -1}, "parameter 'chunk_size' of Database must be a positive int; got -1"),
        ({"chunk_size": "big"}, "parameter 'chunk_size' of Database must be a positive int"),
        ({"table_postfix": "x; drop"}, "parameter 'table_postfix' of Database must be"),
        ({"url": "model.db"}, "parameter 'url' of Database must be an SQLAlchemy URL"),
        ({"url": "nosuchdb://x"}, "parameter 'url' of Database must be a usable SQLAlchemy URL"),
    ],
)
def test_database_validates_at_first_use(tmp_path, options, message):
    persister = Database(**{"url": f"sqlite:///{tmp_path / 'm.db'}", **options})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        persister.write(LogisticRegression())


def test_file_path_needs_version_placeholder(tmp_path):
    persister = File(str(tmp_path / "model.pickle"))
    with pytest.raises(ConfigError, match="parameter 'path' of File must be a path containing"):
        persister.list_models()


def test_file_missing_model_file_is_reported(tmp_path, iris):
    persister = File(str(tmp_path / "model-{version}.pickle"))
    persister.write(fitted(iris))
    os.unlink(tmp_path / "model-1.pickle")
    with pytest.raises(PersistenceError, match="model version 1 is listed but"):
        persister.read(1)


# ---------------------------------------------------------------- CachedUpdatePersister
def test_cached_persister_delegates_and_caches(store, iris):
    cached = CachedUpdatePersister(store.make())
    with pytest.raises(NoModelError):
        cached.read()
    version = cached.write(fitted(iris))
    cached.activate(version)
    model = cached.read()
    assert model.__metadata__["version"] == version
    assert cached.read() is model  # served from the cache, not unpickled again
    assert cached.read(version) is not model
    assert cached.list_models() == store.make().list_models()
    assert cached.list_properties()["active-model"] == str(version)
    cached.delete(version)
    with pytest.raises(NoModelError):
        cached.read()


def test_cached_persister_uses_config_process_store(tmp_path, iris):
    impl = File(str(tmp_path / "model-{version}.pickle"))
    impl.activate(impl.write(fitted(iris)))
    config = SimpleNamespace(process_store=ProcessStore())
    cached = CachedUpdatePersister(impl)
    cached.initialize_component(config)
    assert "model" not in config.process_store
    assert cached.refresh() is True
    assert config.process_store["model"].__metadata__["version"] == 1
    assert cached.update_cache() is False  # same active version: nothing reloaded


@pytest.mark.slow
def test_cached_persister_refreshes_on_rrule(tmp_path, iris):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cached = CachedUpdatePersister(Database(url), update_cache_rrule={"freq": "SECONDLY"})
    other = Database(url)  # stands for pf-fit in another process
    other.activate(other.write(fitted(iris)))
    cached.start()
    try:
        assert cached.read().__metadata__["version"] == 1
        other.activate(other.write(fitted(iris)))
        deadline = time.monotonic() + 5
        while cached.read().__metadata__["version"] != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cached.read().__metadata__["version"] == 2
    finally:
        cached.stop(timeout=5)
    assert not cached.started


def test_cached_persister_recovers_when_a_model_appears(tmp_path, iris):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cached = CachedUpdatePersister(Database(url), update_cache_rrule={"freq": "HOURLY"})
    cached.start()  # no model yet: starting must not fail
    try:
        with pytest.raises(NoModelError):
            cached.read()
        other = Database(url)
        other.activate(other.write(fitted(iris)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                assert cached.read().__metadata__["version"] == 1
                break
            except NoModelError:
                time.sleep(0.2)
        assert cached.read().__metadata__["version"] == 1
    finally:
        cached.stop(timeout=5)


# ---------------------------------------------------------------- scheduling and upgrades
@pytest.mark.slow
def test_rrule_thread_runs_on_schedule_and_survives_errors(caplog):
    from datetime import datetime, timedelta

    from dateutil import rrule

    from pipeforge.scheduling import RruleThread

    calls = []

    def tick():
        calls.append(datetime.now())
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    start = datetime.now().replace(microsecond=0) + timedelta(seconds=2)
    rule = rrule.rrule(rrule.SECONDLY, interval=2, dtstart=start, count=3)
    thread = RruleThread(tick, rule)
    assert thread.daemon and not thread.is_alive()  # nothing runs before start()
    thread.start()
    thread.join(timeout=60)  # the rule has three occurrences; then the thread ends by itself
    assert not thread.is_alive()
    # The failing first run did not end the schedule. A run is never early (a
    # thread that falls more than an interval behind skips an occurrence instead).
    assert 2 <= len(calls) <= 3
    assert calls == sorted(calls) and calls[0] >= start - timedelta(milliseconds=50)
    assert "first run fails" in caplog.text


def test_rrule_thread_stops_while_it_waits():
    from pipeforge.scheduling import RruleThread

    calls = []
    thread = RruleThread(lambda: calls.append(1), {"freq": "HOURLY"})
    thread.start()
    thread.stop(timeout=30)  # a thread that slept through stop() would still wait an hour
    assert not thread.is_alive() and thread.stopped
    assert calls == []


def test_make_rrule_accepts_names_and_objects():
    from dateutil import rrule

    from pipeforge.scheduling import make_rrule

    rule = make_rrule({"freq": "HOURLY", "interval": 2})
    first, second = rule[0], rule[1]
    assert (second - first).total_seconds() == 7200
    existing = rrule.rrule(rrule.DAILY)
    assert make_rrule(existing) is existing
    with pytest.raises(ConfigError, match="must have a 'freq' among YEARLY"):
        make_rrule({"freq": "FORTNIGHTLY"})
    with pytest.raises(ConfigError, match="got 'hourly' instead"):
        make_rrule("hourly")
    with pytest.raises(ConfigError, match="must be valid rrule arguments"):
        make_rrule({"freq": "DAILY", "colour": "red"})


def test_upgrade_steps_select_between_versions():
    from pipeforge.persistence.upgrade import parse_version

    steps = UpgradeSteps()
    ran = []
    for version in ("1.10", "0.9.1", "1.0", "1.2"):
        steps.add(version)(lambda target, v=version: ran.append((v, target)))
    assert steps.versions() == ["0.9.1", "1.0", "1.2", "1.10"]
    assert steps.run("store", "0.9.1", "1.2") == ["1.0", "1.2"]
    assert ran == [("1.0", "store"), ("1.2", "store")]
    assert steps.run("store", "1.10", "2.0") == []
    assert parse_version("1.0.0") == parse_version("1") == (1,)
    assert parse_version("1.0rc1") == (1,)
    with pytest.raises(ConfigError, match="a version must look like '1.2.3'; got 'next'"):
        parse_version("next")


def test_cached_persister_checks_its_rrule_at_start(tmp_path):
    cached = CachedUpdatePersister(
        File(str(tmp_path / "model-{version}.pickle")), update_cache_rrule={"freq": "OFTEN"}
    )
    with pytest.raises(
        ConfigError, match="parameter 'update_cache_rrule' of CachedUpdatePersister"
    ):
        cached.start()
    assert not cached.started


class _GatedFile(File):
    """A File persister whose reads wait for a gate, like unpickling a big model."""

    def __init__(self, path):
        super().__init__(path)
        self.reading = threading.Event()
        self.gate = threading.Event()

    def read(self, version=None):
        self.reading.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().read(version)


def test_cached_persister_serves_old_model_while_refreshing(tmp_path, iris):
    impl = _GatedFile(str(tmp_path / "model-{version}.pickle"))
    impl.activate(impl.write(fitted(iris)))
    cached = CachedUpdatePersister(impl)
    impl.gate.set()
    cached.refresh()
    impl.gate.clear()
    impl.reading.clear()
    impl.activate(impl.write(fitted(iris)))
    refresher = threading.Thread(target=cached.refresh)
    refresher.start()
    try:
        assert impl.reading.wait(30)  # the refresh is now stuck reading version 2
        served = []
        reader = threading.Thread(target=lambda: served.append(cached.read()))
        reader.start()
        reader.join(30)  # a read that waited for the refresh would still be waiting
        assert not reader.is_alive()
        assert served[0].__metadata__["version"] == 1  # the old model, while refreshing
    finally:
        impl.gate.set()
        refresher.join(30)
    assert cached.read().__metadata__["version"] == 2


_READ_RSS = """
import gc, sys, psutil, sklearn.linear_model
from pipeforge.persistence import Database, File
kind, location = sys.argv[1], sys.argv[2]
persister = File(location) if kind == "file" else Database(location)
persister.list_models()
gc.collect()
before = psutil.Process().memory_info().rss
model = persister.read(1)
print(psutil.Process().memory_info().rss - before)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_reading_costs_little_more_memory_than_the_pickle(kind, request, tmp_path):
    import pickle
    import subprocess
    import sys

    import numpy as np

    store = _make_store(kind, request, tmp_path)
    model = LogisticRegression()
    model.weights = np.random.default_rng(0).random(4_000_000)  # 32 MB
    size = len(pickle.dumps(model, protocol=5))
    store.make().write(model)
    del model
    out = subprocess.run(
        [sys.executable, "-c", _READ_RSS, kind, store.location],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    growth = int(out.stdout.split()[-1])
    assert growth < 1.3 * size, f"reading grew memory by {growth / size:.2f}x the pickle"


def test_relative_store_paths_are_taken_from_the_config_folder(tmp_path, monkeypatch, iris):
    """Started from any directory, a project finds its own model store."""
    from pipeforge.config import load_config

    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text(
        "model_persister: {__factory__: pipeforge.persistence.Database, url: 'sqlite:///models.db'}\n"
        "model_persister_export:\n"
        "  {__factory__: pipeforge.persistence.File, path: 'store/model-{version}.pickle'}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "store").mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config([str(project / "config.yaml")])
    assert config["model_persister"].write(iris) == 1
    assert config["model_persister_export"].write(iris) == 1
    assert (project / "models.db").exists()
    assert (project / "store" / "model-1.pickle").exists()
    assert list(elsewhere.iterdir()) == []
    config["model_persister"].close()
