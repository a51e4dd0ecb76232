"""Dataset loaders, run against real files and a real SQLite database."""

import os
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from pipeforge.dataset import CSV, SQL, EmptyDatasetLoader, ScheduledDatasetLoader, Table
from pipeforge.errors import ConfigError, DataError
from pipeforge.interfaces import Background, DatasetLoader
from pipeforge.process_store import ProcessStore

ROWS = [(1.0, 2.0, "a"), (3.0, 4.0, "b"), (5.0, 6.0, "a")]


class _Config:
    """What the loaders use of a Config: its folder and process store."""

    def __init__(self, here=None):
        self.here = here
        self.process_store = ProcessStore()


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "data.tsv").write_text(
        "x1\tx2\ty\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in ROWS)
    )
    (tmp_path / "data.csv").write_text("x1,x2,y\n" + "".join(f"{a},{b},{c}\n" for a, b, c in ROWS))
    db = sqlite3.connect(tmp_path / "data.db")
    db.execute("create table samples (x1 real, x2 real, y text)")
    db.executemany("insert into samples values (?, ?, ?)", ROWS)
    db.commit()
    db.close()
    return tmp_path


def _file_loaders(path):
    return {
        "Table": Table(str(path / "data.tsv"), target_column="y"),
        "CSV": CSV(str(path / "data.csv"), target_column="y"),
        "SQL": SQL(f"sqlite:///{path / 'data.db'}", "select * from samples", target_column="y"),
    }


@pytest.mark.parametrize("kind", ["Table", "CSV", "SQL"])
def test_loaders_return_features_and_target(data_dir, kind):
    loader = _file_loaders(data_dir)[kind]
    assert isinstance(loader, DatasetLoader)
    X, y = loader()
    assert isinstance(X, np.ndarray)
    np.testing.assert_allclose(X.astype(float), [[1, 2], [3, 4], [5, 6]])
    assert list(y) == ["a", "b", "a"]


@pytest.mark.parametrize("kind", ["Table", "CSV", "SQL"])
def test_loaders_keep_dataframes_without_ndarray(data_dir, kind):
    loader = _file_loaders(data_dir)[kind]
    loader.ndarray = False
    X, y = loader()
    assert isinstance(X, pd.DataFrame) and list(X.columns) == ["x1", "x2"]
    assert isinstance(y, pd.Series)


@pytest.mark.parametrize("kind", ["Table", "CSV", "SQL"])
def test_loaders_without_target_column(data_dir, kind):
    loader = _file_loaders(data_dir)[kind]
    loader.target_column = None
    X, y = loader()
    assert X.shape == (3, 3) and y is None


@pytest.mark.parametrize("kind", ["Table", "CSV", "SQL"])
def test_unknown_target_column_is_a_data_error(data_dir, kind):
    loader = _file_loaders(data_dir)[kind]
    loader.target_column = "species"
    with pytest.raises(DataError, match=r"no target column 'species' \(columns: 'x1', 'x2', 'y'\)"):
        loader()


def test_table_passes_read_options_to_pandas(data_dir):
    X, y = Table(str(data_dir / "data.csv"), target_column="y", sep=",", nrows=2)()
    assert len(X) == 2
    X, y = CSV(str(data_dir / "data.csv"), target_column="y", skiprows=[1], usecols=["x1", "y"])()
    assert X.tolist() == [[3.0], [5.0]]


def test_relative_path_resolves_against_the_config_folder(data_dir, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    loader = CSV("data.csv", target_column="y")
    loader.initialize_component(_Config(here=str(data_dir)))
    assert loader.resolved_path() == os.path.join(str(data_dir), "data.csv")
    assert len(loader()[0]) == 3


def test_relative_path_without_config_uses_the_current_directory(data_dir, monkeypatch):
    monkeypatch.chdir(data_dir)
    assert len(CSV("data.csv")()[0]) == 3


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"cannot read dataset '.*iris.data': .*No such file"):
        Table(str(tmp_path / "iris.data"))()
    loader = Table("iris.data")
    loader.initialize_component(_Config(here=str(tmp_path)))
    with pytest.raises(DataError) as info:
        loader()
    assert str(info.value).startswith("cannot read dataset 'iris.data'")


def test_bad_read_keyword_is_a_config_error(data_dir):
    with pytest.raises(ConfigError, match="bad keyword argument for CSV"):
        CSV(str(data_dir / "data.csv"), no_such_option=1)()


def test_sql_relative_sqlite_file_resolves_against_the_config_folder(
    data_dir, tmp_path_factory, monkeypatch
):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    loader = SQL("sqlite:///data.db", "select x1, y from samples", target_column="y")
    loader.initialize_component(_Config(here=str(data_dir)))
    X, y = loader()
    assert X.tolist() == [[1.0], [3.0], [5.0]]


def test_sql_errors_name_the_url_without_password(data_dir):
    with pytest.raises(
        DataError, match=r"cannot read dataset from sqlite:///.*data.db: .*no such table"
    ):
        SQL(f"sqlite:///{data_dir / 'data.db'}", "select * from nope")()
    with pytest.raises(ConfigError, match="parameter 'url' of SQL must be an SQLAlchemy URL"):
        SQL("not a url", "select 1")()


def test_empty_dataset_loader():
    assert EmptyDatasetLoader()() == (None, None)


def test_constructors_do_no_io(tmp_path):
    """Building a loader reads nothing and connects nowhere; the first call does."""
    import threading

    threads = threading.active_count()
    table = Table(str(tmp_path / "missing.tsv"))
    sql = SQL(f"sqlite:///{tmp_path / 'data.db'}", "select 1")
    impl = _CountingLoader()
    scheduled = ScheduledDatasetLoader(impl, {"freq": "HOURLY"})
    assert list(tmp_path.iterdir()) == []  # SQLite creates its file on connecting
    assert impl.calls == 0 and threading.active_count() == threads
    with pytest.raises(DataError, match="missing.tsv"):
        table()
    assert sql() is not None and (tmp_path / "data.db").exists()
    with pytest.raises(DataError, match="no data yet"):
        scheduled()


class _CountingLoader(DatasetLoader):
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return np.array([[self.calls]]), np.array([self.calls])


def test_scheduled_loader_loads_on_start_and_refreshes():
    config = _Config()
    impl = _CountingLoader()
    loader = ScheduledDatasetLoader(impl, {"freq": "SECONDLY", "interval": 1})
    assert isinstance(loader, Background)
    loader.initialize_component(config)
    with pytest.raises(DataError, match="no data yet"):
        loader()
    assert impl.calls == 0
    loader.start()
    try:
        assert impl.calls == 1
        X, y = loader()
        assert y.tolist() == [1]
        assert config.process_store["data"] == (X, y)
        deadline = time.monotonic() + 5
        while impl.calls < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert impl.calls >= 2
        assert loader()[1][0] >= 2
    finally:
        loader.stop()
    assert loader._thread is None
    # Stopped, nothing refreshes any more: calling the loader never reads the source.
    calls = impl.calls
    assert [loader()[1][0] for _ in range(3)] == [calls] * 3
    assert impl.calls == calls


def test_scheduled_loader_bad_rrule_is_a_config_error():
    loader = ScheduledDatasetLoader(_CountingLoader(), {"freq": "SOMETIMES"})
    loader.initialize_component(_Config())
    with pytest.raises(ConfigError, match="freq"):
        loader.start()
    loader.stop()


def test_scheduled_loader_names_a_bad_rrule_when_started():
    from pipeforge.dataset import EmptyDatasetLoader, ScheduledDatasetLoader
    from pipeforge.errors import ConfigError

    loader = ScheduledDatasetLoader(EmptyDatasetLoader(), update_cache_rrule={"interval": 2})
    with pytest.raises(
        ConfigError, match="parameter 'update_cache_rrule' of ScheduledDatasetLoader"
    ):
        loader.start()


class _FailingOnceLoader(DatasetLoader):
    """Its source is down at the first call (a database not up yet), then answers."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls == 1:
            raise DataError("the source is not up yet")
        return np.array([[self.calls]]), np.array([self.calls])


def test_scheduled_loader_retries_a_failed_first_load_on_its_schedule():
    config = _Config()
    impl = _FailingOnceLoader()
    loader = ScheduledDatasetLoader(impl, {"freq": "SECONDLY", "interval": 1})
    loader.initialize_component(config)
    with pytest.raises(DataError, match="not up yet"):
        loader.start()
    try:
        deadline = time.monotonic() + 10
        while "data" not in config.process_store and time.monotonic() < deadline:
            time.sleep(0.05)
        X, y = loader()
        assert y.tolist() == [2]
    finally:
        loader.stop()
