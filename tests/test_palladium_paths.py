"""Palladium's relative-path rule and default config places (docs/configuration.md, "Relative paths")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeforge.cli.scripts import fit_main
from pipeforge.config import initialize_config, load_config
from pipeforge.errors import ConfigError

IRIS = Path(__file__).resolve().parents[1] / "examples" / "iris" / "iris.data"

# A project laid out as many Palladium projects are: run from its root, config in etc/.
CONFIG = """{
    %(marker)s
    'dataset_loader_train': {
        '__factory__': 'palladium.dataset.Table',
        'path': 'data/iris.data',
        'names': ['a', 'b', 'c', 'd', 'species'],
        'target_column': 'species',
        'sep': ',',
    },
    'model': {'__factory__': 'sklearn.tree.DecisionTreeClassifier', 'max_depth': 2},
    'model_persister': {
        '__factory__': 'palladium.persistence.Database',
        'url': 'sqlite:///models.db',
    },
}"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with data/iris.data and etc/config.py; the current directory is the root."""
    (tmp_path / "data").mkdir()
    shutil.copy(IRIS, tmp_path / "data" / "iris.data")
    (tmp_path / "etc").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    return tmp_path


def write_config(path: Path, marker: str = "") -> Path:
    path.write_text(CONFIG % {"marker": marker})
    return path


def test_palladium_config_resolves_relative_paths_against_the_current_directory(
    project, monkeypatch, capsys
):
    write_config(project / "etc" / "config.py")
    monkeypatch.setenv("PALLADIUM_CONFIG", "etc/config.py")
    assert fit_main([]) == 0, capsys.readouterr().err
    assert (project / "models.db").exists()  # not etc/models.db
    assert not (project / "etc" / "models.db").exists()


def test_pipeforge_config_resolves_relative_paths_against_its_folder(project, monkeypatch):
    write_config(project / "etc" / "config.py")
    (project / "etc" / "data").mkdir()
    shutil.copy(IRIS, project / "etc" / "data" / "iris.data")
    monkeypatch.setenv("PIPEFORGE_CONFIG", "etc/config.py")
    config = initialize_config(__mode__="fit")
    X, _ = config["dataset_loader_train"]()
    assert len(X) == 150
    assert config.path_base == str(project / "etc")
    config["model_persister"].list_models()
    assert (project / "etc" / "models.db").exists()


def test_marker_makes_a_pipeforge_named_config_palladium_style(project, monkeypatch):
    write_config(project / "etc" / "config.py", "'__relative_to__': 'cwd',")
    monkeypatch.setenv("PIPEFORGE_CONFIG", "etc/config.py")
    config = initialize_config(__mode__="fit")
    assert config.path_base == str(project)
    assert "__relative_to__" not in config  # a marker, not an entry
    X, _ = config["dataset_loader_train"]()
    assert len(X) == 150


def test_marker_keeps_a_palladium_config_pipeforge_style(project, monkeypatch):
    write_config(project / "etc" / "config.py", "'__relative_to__': 'config',")
    monkeypatch.setenv("PALLADIUM_CONFIG", "etc/config.py")
    assert initialize_config().path_base == str(project / "etc")


def test_bad_marker_is_a_config_error_naming_file_and_key(project):
    path = write_config(project / "etc" / "config.py", "'__relative_to__': 'home',")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    message = str(caught.value)
    assert message.startswith(f"{path}: __relative_to__: must be 'config'")
    assert "'cwd'" in message and "got 'home'" in message


@pytest.mark.parametrize("place", ["palladium-config.py", "etc/palladium-config.py"])
def test_palladium_default_places_are_searched(project, place):
    write_config(project / place)
    config = initialize_config()
    assert config.sources == [place]
    assert config.path_base == str(project)  # Palladium's rule for Palladium's places


def test_pipeforge_default_places_come_first(project):
    write_config(project / "palladium-config.py")
    (project / "etc" / "pipeforge-config.yaml").write_text("x-a: 1\n")
    config = initialize_config()
    assert config.sources == ["etc/pipeforge-config.yaml"] and config["x-a"] == 1
    assert config.path_base == str(project / "etc")


def test_no_variable_and_no_default_file_names_both(project):
    with pytest.raises(ConfigError) as caught:
        initialize_config()
    message = str(caught.value)
    assert "PIPEFORGE_CONFIG is not set" in message and "palladium-config.py" in message
