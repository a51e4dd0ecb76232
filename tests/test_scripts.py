"""The pf-* scripts through their main(argv), with real config files under tmp_path."""

import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from pipeforge import __version__
from pipeforge.cli import scripts
from pipeforge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
NAMES = ["sepal length", "sepal width", "petal length", "petal width", "species"]
MAPPING = [(name, "float") for name in NAMES[:4]]


def base_config(tmp_path):
    loader = {
        "__factory__": "pipeforge.dataset.CSV",
        "path": "iris.data",
        "names": NAMES,
        "target_column": "species",
        "nrows": 100,
    }
    return {
        "dataset_loader_train": loader,
        "dataset_loader_test": {"__copy__": "dataset_loader_train", "nrows": None, "skiprows": 100},
        "model": {
            "__factory__": "sklearn.linear_model.LogisticRegression",
            "C": 0.3,
            "max_iter": 1000,
        },
        "scoring": "accuracy",
        "model_persister": {
            "__factory__": "pipeforge.persistence.Database",
            "url": f"sqlite:///{tmp_path / 'models.db'}",
        },
        "model_persister_export": {
            "__factory__": "pipeforge.persistence.File",
            "path": str(tmp_path / "export" / "model-{version}.pickle"),
        },
        "grid_search": {"param_grid": {"C": [0.3, 1.0]}, "cv": 3},
        "predict_service": {"__factory__": "pipeforge.server.PredictService", "mapping": MAPPING},
    }


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with iris.data and a writer for config.py; PIPEFORGE_CONFIG points at it."""
    shutil.copy(REPO / "examples" / "iris" / "iris.data", tmp_path / "iris.data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    monkeypatch.delenv("PIPEFORGE_DEBUG", raising=False)

    class Project:
        path = tmp_path
        config_file = tmp_path / "config.py"

        def write(self, config=None, **changes):
            config = dict(base_config(tmp_path) if config is None else config)
            for key, value in changes.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
            self.config_file.write_text(repr(config))
            monkeypatch.setenv("PIPEFORGE_CONFIG", str(self.config_file))
            return self.config_file

    project = Project()
    project.write()
    return project


def run(main, argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, prog, *fragments):
    # INFO lines of the default log handler may come first; the error is one line.
    lines = [line for line in err.strip().splitlines() if not line.startswith("INFO:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)
    assert "Traceback" not in err


# -- pf-fit ---------------------------------------------------------------


def test_fit_writes_versions(project, capsys):
    code, out, err = run(scripts.fit_main, [], capsys)
    assert code == 0, err
    assert "Wrote model with version 1" in out
    code, out, _ = run(scripts.fit_main, [], capsys)
    assert "version 2" in out
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    listing = json.loads(out)
    assert [m["version"] for m in listing["models"]] == [1, 2]
    assert listing["properties"]["active-model"] == "2"
    assert all("train_timestamp" in m for m in listing["models"])


def test_fit_no_save_and_no_activate(project, capsys):
    code, out, _ = run(scripts.fit_main, ["--no-save"], capsys)
    assert code == 0 and "not stored" in out
    code, out, _ = run(scripts.fit_main, ["--no-activate"], capsys)
    assert code == 0 and "Wrote model with version 1 (not activated)" in out
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert "active-model" not in json.loads(out)["properties"]


def test_fit_evaluate_prints_and_stores_scores(project, capsys):
    code, out, _ = run(scripts.fit_main, ["-e"], capsys)
    assert code == 0
    assert "score_train: 0.9800" in out and "score_test: 0.9600" in out
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert json.loads(out)["models"][0]["score_test"] == pytest.approx(0.96)


def test_fit_save_if_better_than(project, capsys):
    code, out, _ = run(scripts.fit_main, ["--save-if-better-than=0.97"], capsys)
    assert code == 0 and "not better than 0.97" in out and "Wrote" not in out
    code, out, _ = run(scripts.fit_main, ["--save-if-better-than=0.9"], capsys)
    assert code == 0 and "Wrote model with version 1" in out
    code, _, err = run(scripts.fit_main, ["--save-if-better-than=good"], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-fit", "--save-if-better-than must be a number; got 'good'")


def test_fit_applies_decorator_lists(project, capsys):
    (project.path / "deco_calls.py").write_text(
        "import functools\n"
        "CALLS = []\n"
        "def record(name):\n"
        "    def decorator(func):\n"
        "        @functools.wraps(func)\n"
        "        def wrapper(*args, **kwargs):\n"
        "            CALLS.append(name)\n"
        "            return func(*args, **kwargs)\n"
        "        return wrapper\n"
        "    return decorator\n"
        "fit_deco = record('fit')\n"
        "load_deco = record('load')\n"
    )
    project.write(
        fit_decorators=["deco_calls.fit_deco"], load_data_decorators=["deco_calls.load_deco"]
    )
    code, out, err = run(scripts.fit_main, ["-e"], capsys)
    assert code == 0, err
    import deco_calls

    assert deco_calls.CALLS == ["fit", "load", "load"]
    sys.modules.pop("deco_calls")


# -- pf-test --------------------------------------------------------------


def test_test_prints_accuracy(project, capsys):
    run(scripts.fit_main, [], capsys)
    project.write(model={"__factory__": "sklearn.tree.DecisionTreeClassifier", "max_depth": 1})
    run(scripts.fit_main, [], capsys)
    code, out, _ = run(scripts.test_main, [], capsys)
    assert code == 0 and out.startswith("accuracy: ") and out.strip() != "accuracy: 0.9600"
    code, out, _ = run(scripts.test_main, ["--model-version=1"], capsys)
    assert code == 0 and out.strip() == "accuracy: 0.9600"


def test_test_with_dict_scoring_from_the_config(project, capsys):
    run(scripts.fit_main, [], capsys)
    project.write(scoring={"acc": "accuracy", "f1": "f1_macro"})
    code, out, _ = run(scripts.test_main, [], capsys)
    assert code == 0
    assert "acc: 0.9600" in out and "f1: " in out


def test_test_unknown_version_is_a_runtime_error(project, capsys):
    run(scripts.fit_main, [], capsys)
    code, _, err = run(scripts.test_main, ["--model-version=9"], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-test", "no model with version 9", "available versions: 1")
    code, _, err = run(scripts.test_main, ["--model-version=latest"], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-test", "--model-version must be an integer")


def test_test_without_any_model(project, capsys):
    code, _, err = run(scripts.test_main, [], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-test")


def test_test_predict_failure_is_one_line(project, capsys):
    run(scripts.fit_main, [], capsys)
    (project.path / "narrow.csv").write_text("1.0,2.0,Iris-setosa\n")
    project.write(
        dataset_loader_test={
            "__factory__": "pipeforge.dataset.CSV",
            "path": "narrow.csv",
            "names": ["a", "b", "species"],
            "target_column": "species",
        }
    )
    code, _, err = run(scripts.test_main, [], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-test", "scoring the model on the test data failed", "features")


# -- pf-list and pf-admin -----------------------------------------------------


def test_list_is_readable(project, capsys):
    before = sorted(project.path.iterdir())
    code, out, err = run(scripts.list_main, [], capsys)  # no store yet: said, not created
    assert (code, out) == (1, "") and "no model store at" in err
    assert sorted(project.path.iterdir()) == before
    run(scripts.fit_main, ["-e"], capsys)
    code, out, _ = run(scripts.list_main, [], capsys)
    assert code == 0
    assert "version 1 (active)" in out and "score_test=0.9600" in out
    assert "active-model: 1" in out


def test_list_into_a_closed_pipe_stops_quietly(project):
    """``pf-list | head -0``: the reader is gone; no traceback, no 'Exception ignored'."""
    import subprocess

    from pipeforge.config import load_config

    load_config([str(project.config_file)])["model_persister"].list_models()  # an empty store

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pipeforge.cli.scripts import list_main; raise SystemExit(list_main())",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=project.path,
    )
    proc.stdout.close()  # long before the script has written anything
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert err == ""


def test_admin_activate_and_delete(project, capsys):
    run(scripts.fit_main, [], capsys)
    run(scripts.fit_main, [], capsys)
    code, out, _ = run(scripts.admin_main, ["activate", "1"], capsys)
    assert code == 0 and "Activated model version 1" in out
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert json.loads(out)["properties"]["active-model"] == "1"
    code, out, _ = run(scripts.admin_main, ["delete", "2"], capsys)
    assert code == 0 and "Deleted model version 2" in out
    code, _, err = run(scripts.admin_main, ["activate", "2"], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-admin", "no model with version 2")
    code, _, err = run(scripts.admin_main, ["delete", "5"], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-admin", "no model with version 5")


def test_admin_usage_errors(project, capsys):
    code, _, err = run(scripts.admin_main, ["activate"], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-admin", "missing argument <version>; see pf-admin -h")
    code, _, err = run(scripts.admin_main, ["activate", "one"], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-admin", "<version> must be an integer model version; got 'one'")


# -- pf-grid-search -----------------------------------------------------------


def test_grid_search_prints_results_and_saves_them(project, capsys):
    code, out, err = run(scripts.grid_search_main, ["--save-results=results.csv"], capsys)
    assert code == 0, err
    assert "mean_test_score" in out and "{'C': 0.3}" in out and "Best parameters" in out
    assert (project.path / "results.csv").read_text().count("\n") == 3
    code, out, err = run(scripts.list_main, ["--json"], capsys)
    assert (code, out) == (1, "") and "no model store at" in err  # nothing was stored


def test_grid_search_persist_best(project, capsys):
    code, out, _ = run(scripts.grid_search_main, ["--persist-best"], capsys)
    assert code == 0 and "Wrote model with version 1" in out
    code, out, _ = run(scripts.test_main, [], capsys)
    assert code == 0 and out.startswith("accuracy:")


def test_grid_search_with_another_search_class(project, capsys):
    project.write(
        grid_search={
            "__factory__": "sklearn.model_selection.RandomizedSearchCV",
            "estimator": {"__copy__": "model"},
            "param_distributions": {"C": [0.1, 0.3, 1.0]},
            "n_iter": 2,
            "cv": 2,
            "random_state": 0,
        }
    )
    code, out, err = run(scripts.grid_search_main, [], capsys)
    assert code == 0, err
    assert out.count("{'C': ") == 3  # two rows and the best parameters


def test_grid_search_without_entry(project, capsys):
    project.write(grid_search=None)
    code, _, err = run(scripts.grid_search_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-grid-search", str(project.config_file), "'grid_search'")


def test_grid_search_bad_argument(project, capsys):
    project.write(grid_search={"param_grid": {"C": [1.0]}, "folds": 3})
    code, _, err = run(scripts.grid_search_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-grid-search", "grid_search", "folds")


# -- pf-stream ----------------------------------------------------------------


def test_stream_predicts_line_by_line(project, capsys, monkeypatch):
    run(scripts.fit_main, [], capsys)
    sample = dict(zip(NAMES[:4], [5.8, 2.8, 5.1, 2.4], strict=True))
    lines = [
        json.dumps([sample]),
        "not json",
        json.dumps([sample, dict(sample, **{"petal length": 1.4, "petal width": 0.2})]),
        "exit",
        json.dumps([sample]),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, err = run(scripts.stream_main, [], capsys)
    assert code == 0  # a bad line is answered in the output; the stream goes on
    first, bad, third = out.splitlines()  # one output line per input line up to 'exit'
    assert (first, third) == ('["Iris-virginica"]', '["Iris-virginica", "Iris-setosa"]')
    error = json.loads(bad)["metadata"]
    assert error["status"] == "ERROR" and error["error_code"] == -1
    assert error["error_message"].startswith("line 2: not valid JSON")
    assert "pf-stream: error: line 2: not valid JSON" in err


def test_stream_reports_bad_samples(project, capsys, monkeypatch):
    run(scripts.fit_main, [], capsys)
    lines = [
        json.dumps([{"sepal length": 1.0}]),
        json.dumps({"a": 1}),
        json.dumps([[5.8, 2.8, 5.1, 2.4]]),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, err = run(scripts.stream_main, [], capsys)
    assert code == 0
    answers = [json.loads(line)["metadata"]["error_message"] for line in out.splitlines()]
    errors = err.strip().splitlines()
    assert len(errors) == len(answers) == 3 and "Traceback" not in err
    assert "line 1: sample 0: missing value for 'sepal width'" in errors[0]
    assert "line 2: expected a JSON list of samples" in errors[1]
    assert "line 3: sample 0 must be a JSON object" in errors[2]
    assert answers[0].startswith("line 1: sample 0: missing value for 'sepal width'")
    assert answers[2].startswith("line 3: sample 0 must be a JSON object")


def test_stream_without_predict_service_takes_rows(project, capsys, monkeypatch):
    run(scripts.fit_main, [], capsys)
    project.write(predict_service=None)
    monkeypatch.setattr(sys, "stdin", io.StringIO("[[5.8, 2.8, 5.1, 2.4]]\n"))
    code, out, err = run(scripts.stream_main, [], capsys)
    assert code == 0, err
    assert out == '["Iris-virginica"]\n'


# -- pf-export, pf-upgrade, pf-version -------------------------------------


def test_export_copies_a_model(project, capsys):
    run(scripts.fit_main, [], capsys)
    run(scripts.fit_main, [], capsys)
    code, out, err = run(scripts.export_main, ["--version=1"], capsys)
    assert code == 0, err
    assert "Exported model version 1 as version 1" in out
    code, out, _ = run(scripts.export_main, ["--no-activate"], capsys)
    assert "Exported model version 2 as version 2 (not activated)" in out
    assert sorted(p.name for p in (project.path / "export").glob("model-*.pickle")) == [
        "model-1.pickle",
        "model-2.pickle",
    ]
    code, _, err = run(scripts.export_main, ["--version=7"], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-export", "no model with version 7")


def test_export_needs_the_export_persister(project, capsys):
    project.write(model_persister_export=None)
    code, _, err = run(scripts.export_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-export", str(project.config_file), "'model_persister_export'")


def test_upgrade(project, capsys):
    code, out, err = run(scripts.upgrade_main, [], capsys)
    assert code == 0, err
    assert out.startswith(("Ran upgrade steps", "Nothing to upgrade"))


def test_version_needs_no_config(monkeypatch, capsys):
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    code, out, _ = run(scripts.version_main, [], capsys)
    assert code == 0 and out.strip() == __version__


# -- usage and configuration errors -------------------------------------------

ALL = [
    ("pf-fit", scripts.fit_main),
    ("pf-test", scripts.test_main),
    ("pf-list", scripts.list_main),
    ("pf-admin", scripts.admin_main),
    ("pf-grid-search", scripts.grid_search_main),
    ("pf-stream", scripts.stream_main),
    ("pf-export", scripts.export_main),
    ("pf-upgrade", scripts.upgrade_main),
    ("pf-version", scripts.version_main),
]


@pytest.mark.parametrize("prog,main", ALL)
def test_help_and_bad_options(prog, main, capsys):
    code, out, _ = run(main, ["-h"], capsys)
    assert code == 0 and f"Usage:\n  {prog}" in out and "--debug" in out
    code, out, err = run(main, ["--no-such-option"], capsys)
    assert (code, out) == (2, "")
    assert err == f"{prog}: error: unknown option --no-such-option; see {prog} -h\n"


@pytest.mark.parametrize(
    "change,fragments",
    [
        ({"model": {"__factory__": "sklearn.linear_model.NoSuchModel"}}, ["model", "NoSuchModel"]),
        (
            {"model": {"__factory__": "sklearn.linear_model.LogisticRegression", "Cee": 1}},
            ["model", "Cee"],
        ),
        ({"model": None}, ["'model'"]),
        (
            {
                "dataset_loader_test": {"__copy__": "dataset_loader_test2"},
                "dataset_loader_test2": {"__copy__": "dataset_loader_test"},
            },
            ["cycle"],
        ),
    ],
)
def test_config_errors_are_one_line_exit_2(project, capsys, change, fragments):
    config = base_config(project.path)
    for key, value in change.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    project.write(config)
    code, _, err = run(scripts.fit_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-fit", str(project.config_file), *fragments)


def test_config_syntax_error(project, capsys):
    project.config_file.write_text("{'model': {'__factory__': 'x',\n")
    code, _, err = run(scripts.fit_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-fit", str(project.config_file), "syntax")


def test_unset_config_variable(monkeypatch, capsys):
    monkeypatch.delenv("PIPEFORGE_CONFIG", raising=False)
    monkeypatch.delenv("PALLADIUM_CONFIG", raising=False)
    code, _, err = run(scripts.list_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-list", "PIPEFORGE_CONFIG is not set")


def test_missing_persister_for_list(project, capsys):
    project.write(model_persister=None)
    code, _, err = run(scripts.list_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-list", str(project.config_file), "'model_persister'")


def test_unknown_scorer_is_a_config_error(project, capsys):
    run(scripts.fit_main, [], capsys)
    project.write(scoring="acuracy")
    code, _, err = run(scripts.test_main, [], capsys)
    assert code == 2
    assert_one_line_error(err, "pf-test", str(project.config_file), "scoring", "'acuracy'")


def test_debug_shows_the_exception(project):
    project.write(model_persister=None)
    with pytest.raises(ConfigError, match="model_persister"):
        scripts.list_main(["--debug"])


# -- runtime failures ---------------------------------------------------------


def test_unreadable_data_file(project, capsys):
    os.remove(project.path / "iris.data")
    code, _, err = run(scripts.fit_main, [], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-fit", "cannot read dataset 'iris.data'", "No such file")


def test_unpicklable_model(project, capsys):
    (project.path / "unpicklable_models.py").write_text(
        "import threading\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "class Locked(LogisticRegression):\n"
        "    def fit(self, X, y):\n"
        "        self.lock_ = threading.Lock()\n"
        "        return super().fit(X, y)\n"
    )
    project.write(model={"__factory__": "unpicklable_models.Locked", "max_iter": 1000})
    code, out, err = run(scripts.fit_main, [], capsys)
    assert code == 1 and "Wrote" not in out
    assert_one_line_error(err, "pf-fit", "lock")
    code, out, _ = run(scripts.list_main, ["--json"], capsys)
    assert json.loads(out)["models"] == []


def test_fit_error_of_the_model_is_one_line(project, capsys):
    project.write(
        dataset_loader_train={
            "__factory__": "pipeforge.dataset.CSV",
            "path": "iris.data",
            "names": NAMES,
        }
    )
    code, _, err = run(scripts.fit_main, [], capsys)
    assert code == 1
    assert_one_line_error(err, "pf-fit", "ValueError", "--debug")


# -- logging ------------------------------------------------------------------


def test_default_logging_goes_to_stderr(project, capsys):
    code, _, err = run(scripts.fit_main, [], capsys)
    assert "INFO:pipeforge.training: Fitted LogisticRegression" in err


def test_logging_entry_is_honoured(project, capsys):
    log_file = project.path / "pf.log"
    project.write(
        logging={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": str(log_file), "level": "INFO"}
            },
            "loggers": {"pipeforge": {"handlers": ["file"], "level": "INFO", "propagate": False}},
        }
    )
    try:
        code, _, err = run(scripts.fit_main, [], capsys)
        assert code == 0 and "INFO" not in err
        assert "Fitted LogisticRegression" in log_file.read_text()
    finally:
        import logging

        logger = logging.getLogger("pipeforge")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_fit_with_a_scheduled_dataset_loader(project, capsys):
    """The script starts the scheduled loader (it has no data before) and stops it after."""
    config = base_config(project.path)
    config["dataset_loader_train"] = {
        "__factory__": "pipeforge.dataset.ScheduledDatasetLoader",
        "impl": config["dataset_loader_train"],
        "update_cache_rrule": {"freq": "HOURLY"},
    }
    config["dataset_loader_test"]["__copy__"] = "dataset_loader_train.impl"
    project.write(config)
    code, out, err = run(scripts.fit_main, ["-e"], capsys)
    assert code == 0, err
    assert "score_test: 0.9600" in out and "Wrote model with version 1" in out
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("RruleThread")]
