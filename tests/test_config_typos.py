"""Typos in a config are caught: unknown keys name the file, the key path and the closest name."""

from __future__ import annotations

import json
import logging
import pprint
import re
from pathlib import Path

import pytest
import yaml

from pipeforge.cli.models import fit_main
from pipeforge.config import config_paths_from_env, load_config
from pipeforge.config.keys import DECORATOR_LISTS, TOP_LEVEL_KEYS
from pipeforge.errors import ConfigError
from pipeforge.server import create_app
from tests.fixtures.gunicorn import iris_config_dict

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, name: str, config: dict) -> str:
    path = tmp_path / name
    if name.endswith(".py"):
        path.write_text(pprint.pformat(config, sort_dicts=False))
    elif name.endswith(".json"):
        path.write_text(json.dumps(config))
    else:
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def load_error(paths, **extra) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(paths, **extra)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- top-level keys ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.py", "config.yaml", "config.json"])
@pytest.mark.parametrize(
    ("typo", "meant"),
    [("scorin", "scoring"), ("dataset_loader_trian", "dataset_loader_train")],
)
def test_a_misspelt_top_level_key_names_file_key_and_closest_name(tmp_path, name, typo, meant):
    config = iris_config_dict(tmp_path)
    if typo == "scorin":
        config["scorin"] = "accuracy"
    else:
        config[typo] = config.pop(meant)
    path = write(tmp_path, name, config)
    message = load_error([path])
    assert message == f"{path}: {typo}: unknown key {typo!r}; did you mean {meant!r}?"


def test_pf_fit_reports_a_misspelt_key_in_one_line_with_exit_status_2(
    tmp_path, monkeypatch, capsys
):
    config = iris_config_dict(tmp_path)
    config["scorin"] = "accuracy"
    monkeypatch.setenv("PIPEFORGE_CONFIG", write(tmp_path, "config.py", config))
    assert fit_main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pf-fit: error: ")
    assert err[-1].endswith("config.py: scorin: unknown key 'scorin'; did you mean 'scoring'?")
    assert not (tmp_path / "models.db").exists()  # nothing ran


def test_a_key_like_nothing_known_says_how_to_keep_an_own_entry(tmp_path):
    path = write(tmp_path, "config.py", {"zzz_qqq": 1})
    assert load_error([path]) == (
        f"{path}: zzz_qqq: unknown key 'zzz_qqq' (pipeforge reads none such; your own entries "
        "start with '_' or 'x-')"
    )


def test_the_file_named_is_the_one_that_holds_the_key(tmp_path):
    first = write(tmp_path, "base.py", iris_config_dict(tmp_path))
    second = write(tmp_path, "extra.yaml", {"grid_serach": {"cv": 3}})
    assert load_error([first, second]).startswith(f"{second}: grid_serach: ")


def test_own_entries_patterns_and_special_keys_are_accepted(tmp_path):
    config = {
        "x-columns": ["a", "b"],
        "_base": {"__factory__": "sklearn.linear_model.LogisticRegression", "C": 0.5},
        "model": {"__copy__": "_base", "C": 2.0},
        "predict_iris_decorators": [],  # a list a service names for itself
        "predict_service_by_id": {
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [["id", "int"]],
        },
        "__mode__": "fit",
    }
    loaded = load_config([write(tmp_path, "config.py", config)])
    assert loaded["x-columns"] == ["a", "b"]
    assert loaded["model"].C == 2.0 and loaded["_base"].C == 0.5


def test_a_misspelt_special_key_is_not_taken_for_an_own_entry(tmp_path):
    path = write(tmp_path, "config.py", {"__pyhton__": "C['x'] = 1"})
    assert (
        load_error([path])
        == f"{path}: __pyhton__: unknown key '__pyhton__'; did you mean '__python__'?"
    )


def test_components_found_by_type_may_have_any_name(tmp_path):
    config = iris_config_dict(tmp_path)
    config["iris_service"] = config.pop("predict_service") | {"entry_point": "/iris"}
    config["lookup_data"] = {
        "__factory__": "pipeforge.dataset.ScheduledDatasetLoader",
        "impl": {"__factory__": "pipeforge.dataset.EmptyDatasetLoader"},
        "update_cache_rrule": {"freq": "HOURLY"},
    }
    loaded = load_config([write(tmp_path, "config.py", config)], __mode__="predict")
    app = create_app(loaded)
    assert "/iris" in {rule.rule for rule in app.url_map.iter_rules()}
    assert loaded["lookup_data"] in loaded.background()


def test_a_component_of_another_type_under_a_wrong_name_is_refused(tmp_path):
    config = iris_config_dict(tmp_path)
    config["model_persistor"] = config.pop("model_persister")
    path = write(tmp_path, "config.py", config)
    assert load_error([path]).endswith(
        "model_persistor: unknown key 'model_persistor'; did you mean 'model_persister'?"
    )


def test_palladium_form_configs_warn_and_load(tmp_path, monkeypatch, caplog):
    config = iris_config_dict(tmp_path)
    config["project_settings"] = {"threshold": 3}  # read by the project's own code
    path = write(tmp_path, "config.py", config)
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.setenv("PALLADIUM_CONFIG", path)
    with caplog.at_level(logging.WARNING, logger="pipeforge.config.keys"):
        loaded = load_config(config_paths_from_env())
    assert loaded["project_settings"] == {"threshold": 3}
    assert loaded.palladium_form
    warned = [r.getMessage() for r in caplog.records if r.name == "pipeforge.config.keys"]
    assert warned == [
        f"{path}: project_settings: unknown key 'project_settings' (pipeforge does not read it)"
    ]


def test_a_palladium_factory_name_makes_the_palladium_form(tmp_path, caplog):
    config = iris_config_dict(tmp_path)
    config["model_persister"]["impl"]["__factory__"] = "palladium.persistence.Database"
    config["scorin"] = "accuracy"
    path = write(tmp_path, "config.py", config)
    with caplog.at_level(logging.WARNING, logger="pipeforge.config.keys"):
        loaded = load_config([path])
    assert loaded["scorin"] == "accuracy"
    assert [r.getMessage() for r in caplog.records if r.name == "pipeforge.config.keys"] == [
        f"{path}: scorin: unknown key 'scorin'; did you mean 'scoring'? "
        "(pipeforge does not read it)"
    ]


@pytest.mark.parametrize(
    "example",
    ["iris/config.py", "iris/config.yaml", "online/config.yaml", "palladium-iris/config.py"],
)
def test_the_examples_hold_only_known_keys(example, caplog, monkeypatch):
    path = ROOT / "examples" / example
    if not path.exists():
        pytest.skip(f"{example} is not in this checkout")
    monkeypatch.chdir(path.parent)
    with caplog.at_level(logging.WARNING, logger="pipeforge.config.keys"):
        load_config([str(path)], lazy=True)
    assert [r for r in caplog.records if r.name == "pipeforge.config.keys"] == []


# -- keys inside entries ------------------------------------------------------------


def test_an_unknown_key_inside_alive_is_caught_when_loading(tmp_path):
    config = iris_config_dict(tmp_path, alive={"process_store_requried": ["data"]})
    path = write(tmp_path, "config.yaml", config)
    assert load_error([path]) == (
        f"{path}: alive.process_store_requried: unknown key 'process_store_requried'; "
        "did you mean 'process_store_required'? (known: process_store_required)"
    )


@pytest.mark.parametrize(
    ("entry", "value", "expected"),
    [
        ("metrics", {"pth": "/m"}, "metrics.pth: unknown setting 'pth'; did you mean 'path'?"),
        (
            "openapi",
            {"doc_path": "/d"},
            "openapi.doc_path: unknown setting 'doc_path'; did you mean 'docs_path'?",
        ),
        (
            "dashboard",
            {"refresh_second": 2},
            "dashboard.refresh_second: unknown setting 'refresh_second'; did you mean 'refresh_seconds'?",
        ),
        (
            "batching",
            {"max_wait": 5},
            "batching.max_wait: unknown setting 'max_wait'; did you mean 'max_wait_ms'?",
        ),
    ],
)
def test_an_unknown_setting_names_the_file_and_key_path_when_serving(
    tmp_path, entry, value, expected
):
    path = write(tmp_path, "config.py", iris_config_dict(tmp_path, **{entry: value}))
    with pytest.raises(ConfigError) as info:  # batching: when the service is built
        create_app(load_config([path], __mode__="predict"))
    assert str(info.value).startswith(f"{path}: {expected} (known: ")


def test_a_misspelt_grid_search_argument(tmp_path, monkeypatch, capsys):
    from pipeforge.cli.models import grid_search_main

    config = iris_config_dict(tmp_path, grid_search={"param_grd": {"C": [0.1, 1.0]}, "cv": 3})
    monkeypatch.setenv("PIPEFORGE_CONFIG", write(tmp_path, "config.py", config))
    assert grid_search_main([]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "grid_search.param_grd: unknown keyword 'param_grd' of GridSearchCV; " in line
    assert "did you mean 'param_grid'?" in line


# -- a component's keywords ---------------------------------------------------------


def test_a_misspelt_keyword_names_its_key_path_and_the_accepted_keywords(tmp_path):
    config = iris_config_dict(tmp_path)
    config["dataset_loader_train"] = {"__factory__": "pipeforge.dataset.Table", "pth": "x.csv"}
    path = write(tmp_path, "config.py", config)
    assert load_error([path]) == (
        f"{path}: dataset_loader_train.pth: unknown keyword 'pth' of pipeforge.dataset.Table; "
        "did you mean 'path'? ('path' is missing) (accepted: path, target_column, ndarray, "
        "and what **read_kwargs takes)"
    )


def test_an_unknown_keyword_deep_inside_a_component(tmp_path):
    config = iris_config_dict(tmp_path)
    config["model_persister"]["impl"]["ur"] = "sqlite://"
    path = write(tmp_path, "config.py", config)
    message = load_error([path])
    assert message.startswith(
        f"{path}: model_persister.impl.ur: unknown keyword 'ur' of pipeforge.persistence.Database; "
        "did you mean 'url'? (accepted: url, "
    )


def test_a_missing_keyword_is_named(tmp_path):
    path = write(tmp_path, "config.py", {"model": {"__factory__": "pipeforge.dataset.Table"}})
    assert load_error([path]).startswith(
        f"{path}: model: missing keyword 'path' of pipeforge.dataset.Table (accepted: path, "
    )


# -- the table of keys, the docs and the code ----------------------------------------


def _documented_keys() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Top-level entries") : text.index("## Several files")]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_docs_list_exactly_the_known_top_level_keys():
    assert _documented_keys() == set(TOP_LEVEL_KEYS)


def test_each_known_key_is_read_by_the_module_named_for_it():
    for key, module in TOP_LEVEL_KEYS.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = path.with_suffix("") / "__init__.py"
        assert f'"{key}"' in path.read_text(), (key, module)


def test_the_decorator_lists_offered_as_suggestions_are_documented():
    docs = "".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    for name in DECORATOR_LISTS:
        assert f"`{name}`" in docs, name


def test_a_misspelt_route_option_names_the_route_and_the_file(tmp_path):
    path = write(
        tmp_path,
        "config.yaml",
        {
            "flask_add_url_rules": [
                {
                    "__factory__": "pipeforge.server.add_url_rule",
                    "rule": "/health",
                    "view_func": "pipeforge.server.alive",
                    "methds": ["GET"],
                }
            ]
        },
    )
    with pytest.raises(ConfigError) as info:
        create_app(load_config([path]))
    message = str(info.value)
    assert "\n" not in message
    assert "config.yaml" in message
    assert "flask_add_url_rules[0]" in message
    assert "'methds'" in message
