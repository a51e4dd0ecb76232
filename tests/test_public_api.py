"""The public names SPEC.md promises; renaming one of them breaks users' configs."""

import importlib
import os
import subprocess
import sys

import pytest

import pipeforge

PUBLIC = {
    "pipeforge.config": ["get_config", "initialize_config", "load_config", "Config"],
    "pipeforge.interfaces": [
        "DatasetLoader",
        "Model",
        "ModelPersister",
        "PredictService",
        "PredictError",
        "annotate",
    ],
    "pipeforge.dataset": ["Table", "CSV", "SQL", "EmptyDatasetLoader", "ScheduledDatasetLoader"],
    "pipeforge.persistence": ["Database", "File", "CachedUpdatePersister"],
    "pipeforge.server": [
        "create_app",
        "PredictService",
        "add_url_rule",
        "fit",
        "update_model_cache",
        "activate",
    ],
    "pipeforge.training": ["fit", "test", "grid_search"],
    "pipeforge.fit": ["with_parallel_backend", "fit", "test", "grid_search"],
    "pipeforge.jobs": ["JobQueue", "JobRunner"],
    "pipeforge.rq_queue": ["RQJobQueue"],
    "pipeforge.errors": [
        "PipeforgeError",
        "ConfigError",
        "PersistenceError",
        "UnknownVersionError",
        "NoModelError",
        "PredictError",
        "VersionError",
    ],
}

SCRIPTS = [
    "pf-fit",
    "pf-test",
    "pf-list",
    "pf-admin",
    "pf-grid-search",
    "pf-stream",
    "pf-export",
    "pf-upgrade",
    "pf-version",
    "pf-devserver",
    "pf-dockerize",
    "pf-pipeline",
    "pf-worker",
]


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_exist(module):
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lacks {missing}"


def test_module_all_lists_only_real_names():
    for module in PUBLIC:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"


def test_persister_methods_match_the_interface():
    """Each persister implements every method itself, with the interface's parameter names."""
    import inspect

    from pipeforge.interfaces import ModelPersister
    from pipeforge.persistence import CachedUpdatePersister, Database, File

    methods = (
        "read",
        "write",
        "activate",
        "delete",
        "list_models",
        "list_properties",
        "upgrade",
        "update_metadata",
    )
    for cls in (Database, File, CachedUpdatePersister):
        assert issubclass(cls, ModelPersister) and not inspect.isabstract(cls), cls
        for method in methods:
            implementation, declared = getattr(cls, method), getattr(ModelPersister, method)
            # upgrade() has a do-nothing default; a real store must bring its own.
            assert implementation is not declared, f"{cls.__name__}.{method} is the interface's"
            assert list(inspect.signature(implementation).parameters) == list(
                inspect.signature(declared).parameters
            ), f"{cls.__name__}.{method}"


def test_errors_are_also_the_builtins_callers_expect():
    from pipeforge import errors

    assert issubclass(errors.UnknownVersionError, LookupError)
    assert issubclass(errors.NoModelError, LookupError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.MissingKeyError, KeyError)
    assert errors.PredictError("no", 7).error_code == 7


def test_palladium_names_resolve_to_pipeforge():
    from pipeforge.factory import resolve_dotted_name
    from pipeforge.persistence import Database
    from pipeforge.server import PredictService

    assert resolve_dotted_name("palladium.persistence.Database") is Database
    assert resolve_dotted_name("palladium.server.PredictService") is PredictService


def test_constructors_only_store_their_arguments(tmp_path):
    """scikit-learn style: building a component touches no file, database or thread."""
    import threading

    from pipeforge.dataset import CSV, SQL
    from pipeforge.persistence import CachedUpdatePersister, Database, File

    threads = threading.active_count()
    Database(url=f"sqlite:///{tmp_path}/models.db")
    File(path=str(tmp_path / "model-{version}.pickle"))
    CachedUpdatePersister(
        impl=Database(url=f"sqlite:///{tmp_path}/m2.db"), update_cache_rrule={"freq": "SECONDLY"}
    )
    CSV(path=str(tmp_path / "nope.csv"))
    SQL(url=f"sqlite:///{tmp_path}/data.db", sql="SELECT 1")
    assert list(tmp_path.iterdir()) == []
    assert threading.active_count() == threads


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_is_installed_and_has_help(script):
    bindir = pipeforge_bin()
    result = subprocess.run(
        [f"{bindir}/{script}", "-h"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout or "usage:" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_says_a_usage_error_in_one_line(script):
    result = subprocess.run(
        [f"{pipeforge_bin()}/{script}", "--bogus"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"{script}: error: unknown option --bogus; see {script} -h\n"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["pf-fit", "--save-if-better-than"], "option --save-if-better-than needs a value"),
        (["pf-fit", "--evaluate=yes"], "option --evaluate takes no value"),
        (["pf-fit", "--no"], "ambiguous option --no (could be --no-save, --no-activate)"),
        (["pf-fit", "-nx"], "unknown option -x"),
        (["pf-list", "models"], "unexpected argument 'models'"),
        (["pf-admin", "activate"], "missing argument <version>"),
        (["pf-admin", "activate", "1", "2"], "unexpected argument '2'"),
        (
            ["pf-admin"],
            "arguments are missing; usage: pf-admin activate <version> [options]"
            " | pf-admin delete <version> [options]"
            " | pf-admin (alias | tag | traffic | promote) [<args>...]",
        ),
        (["pf-dockerize", "app", "base"], "missing argument IMAGE"),
        (["pf-pipeline", "run"], "missing argument <name>"),
    ],
)
def test_usage_errors_say_what_is_wrong(argv, problem):
    script, *args = argv
    result = subprocess.run(
        [f"{pipeforge_bin()}/{script}", *args], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{script}: error: {problem}; see {script} -h\n"


def pipeforge_bin():
    return os.path.dirname(sys.executable)


def test_version_is_a_string():
    assert isinstance(pipeforge.__version__, str) and pipeforge.__version__.count(".") >= 1
    result = subprocess.run(
        [f"{pipeforge_bin()}/pf-version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert pipeforge.__version__ in result.stdout


def test_lint_target_is_the_oldest_supported_python():
    """ruff checks syntax and upgrades against the oldest Python setup.cfg allows.

    With a newer target ruff would rewrite ``timezone.utc`` into
    ``datetime.UTC`` (3.11+) and let other 3.11-only syntax through.
    """
    import configparser
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    setup = configparser.ConfigParser()
    setup.read(os.path.join(root, "setup.cfg"))
    oldest = re.fullmatch(r">=\s*3\.(\d+)", setup["options"]["python_requires"].strip())
    assert oldest, setup["options"]["python_requires"]
    with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
        target = re.search(r'^target-version = "py3(\d+)"$', f.read(), re.MULTILINE)
    assert target and target.group(1) == oldest.group(1)
