"""Files on the local disk: a missing model store is said, never created; an SQLite file in
a missing folder is one line naming it; the disk cache reads pickles only from a folder of the
user's own."""

from __future__ import annotations

import os
import pickle
import pprint
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeforge.cli.listing import list_main
from pipeforge.cli.models import admin_main, fit_main
from tests.fixtures.gunicorn import iris_config_dict


def write_config(tmp_path: Path, url: str, *, cached: bool = False) -> Path:
    path = tmp_path / "config.py"
    store = {"__factory__": "pipeforge.persistence.Database", "url": url}
    if cached:  # the store behind a model cache, as a server's config has it
        store = {"__factory__": "pipeforge.persistence.CachedUpdatePersister", "impl": store}
    path.write_text(pprint.pformat({"model_persister": store}))
    return path


@pytest.mark.parametrize("options", [[], ["--json"], ["--compare", "1", "2"]])
@pytest.mark.parametrize("cached", [False, True])
def test_pf_list_on_a_missing_store_creates_nothing(tmp_path, monkeypatch, capsys, options, cached):
    config = write_config(tmp_path, "sqlite:///models.db", cached=cached)
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path.parent)
    assert list_main(options) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err
        == f"pf-list: error: no model store at {tmp_path / 'models.db'} yet; pf-fit creates it\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.py"]


@pytest.mark.parametrize("command", [["activate", "1"], ["delete", "1"]])
def test_pf_admin_on_a_missing_store_creates_nothing(tmp_path, monkeypatch, capsys, command):
    config = write_config(tmp_path, "sqlite:///models.db")
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    assert admin_main(command) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"pf-admin: error: no model store at {tmp_path / 'models.db'} yet; pf-fit creates it\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.py"]


def test_pf_list_still_lists_an_empty_store(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, "sqlite:///models.db")
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    from pipeforge.config import load_config

    load_config([str(config)])["model_persister"].list_models()  # creates the store
    assert list_main([]) == 0
    assert "No models stored yet." in capsys.readouterr().out


def test_an_sqlite_file_in_a_missing_folder_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere" / "models.db"
    entries = iris_config_dict(tmp_path)
    entries["model_persister"]["impl"]["url"] = "sqlite:///nowhere/models.db"
    config = tmp_path / "config.py"
    config.write_text(pprint.pformat(entries))
    monkeypatch.setenv("PIPEFORGE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    for main in (list_main, fit_main):
        assert main([]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "OperationalError" not in err
        assert f"the SQLite file {missing} cannot be opened" in err
        assert f"its folder {missing.parent} does not exist" in err
    assert not missing.parent.exists()


# -- the disk cache (Palladium's palladium.cache) ---------------------------------------------

CACHED = """
from pipeforge.palladium_compat.cache import PickleDiskCache

calls = []

@PickleDiskCache()
def load(n):
    calls.append(n)
    return list(range(n))

print(load(3), len(calls))
"""


class Planted:
    """A pickle that makes the folder ``path`` when it is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def run_cached(tmp: Path) -> subprocess.CompletedProcess:
    """A program whose function is cached in the default folder, with ``tmp`` as temp dir."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-c", CACHED], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def cache_folder(tmp_path):
    """``(temp dir, its default cache folder)`` after a first run filled the cache."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    first = run_cached(tmp)
    assert first.returncode == 0 and first.stdout == "[0, 1, 2] 1\n", first.stderr
    (folder,) = tmp.iterdir()
    return tmp, folder


def test_the_default_cache_folder_is_private(cache_folder):
    tmp, folder = cache_folder
    assert folder.name == f"pipeforge-cache-{os.getuid()}"
    info = folder.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()
    again = run_cached(tmp)
    assert again.returncode == 0 and again.stdout == "[0, 1, 2] 0\n"  # read from the cache


@pytest.mark.parametrize("how", ["opened to others", "a link to another folder"])
def test_a_cache_folder_others_could_write_is_never_read(tmp_path, cache_folder, how):
    tmp, folder = cache_folder
    marker = tmp_path / "planted-code-ran"
    (cached,) = folder.iterdir()
    if how == "opened to others":
        folder.chmod(0o777)
        planted = folder
    else:
        planted = tmp_path / "someone-elses"
        planted.mkdir()
        cached.rename(planted / cached.name)
        folder.rmdir()
        folder.symlink_to(planted)
    (planted / cached.name).write_bytes(pickle.dumps(Planted(marker)))
    result = run_cached(tmp)
    assert result.returncode == 1
    problem = "may be opened by other users (mode 777)" if how == "opened to others" else "link"
    last = result.stderr.strip().splitlines()[-1]
    assert f"PickleDiskCache reads no pickles from {folder}: it" in last and problem in last
    assert not marker.exists()


def test_an_explicit_folder_every_user_may_write_is_refused(tmp_path):
    from pipeforge.errors import ConfigError
    from pipeforge.palladium_compat.cache import PickleDiskCache

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp itself

    @PickleDiskCache(filename_tmpl=str(shared / "{func}-{key}.pickle"))
    def load(n):
        return list(range(n))

    with pytest.raises(ConfigError, match="may be written to by every user"):
        load(3)
    assert list(shared.iterdir()) == []
