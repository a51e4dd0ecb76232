"""The model commands: ``pf-fit``, ``pf-test``, ``pf-admin``, ``pf-grid-search``, ``pf-export``, ``pf-upgrade``, ``pf-version``.

Each ``*_main(argv=None)`` returns its exit status. The ``*_DOC`` strings
are the docopt usage texts; :func:`pipeforge.cli.run_script` parses them,
loads the config named by ``PIPEFORGE_CONFIG`` and maps errors to exit
statuses. ``pf-version`` imports this module, so everything heavy is
imported inside the script bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, UsageError
from ..progress import Progress
from .queue import print_fit_outcome
from .run import STORE_ENTRIES, existing_store, model_version_option, number_option, run_script

__all__ = [
    "fit_main",
    "test_main",
    "admin_main",
    "grid_search_main",
    "export_main",
    "upgrade_main",
    "version_main",
    "dataset_loader",
    "upgrade_body",
    "version_body",
    "STORE_ENTRIES",
]


def dataset_loader(config: Mapping[str, Any], key: str) -> Callable[..., Any]:
    """The dataset loader ``key`` of ``config`` wrapped in the config's ``load_data_decorators``."""
    from ..factory import decorate

    return decorate(config[key], config, "load_data_decorators")


#: The config entries of the scripts that only read or edit the model store.
# The config entries each script uses; only these are built (see run_script).
_TRAINING = ("dataset_loader_train", "model", "scoring", "load_data_decorators")
_FIT_ENTRIES = (*_TRAINING, "dataset_loader_test", "model_persister", "fit_decorators")
_TEST_ENTRIES = ("dataset_loader_test", "model_persister", "scoring", "load_data_decorators")
_GRID_SEARCH_ENTRIES = (*_TRAINING, "grid_search", "model_persister")


FIT_DOC = """Fit a model and store it with the model persister.

Uses 'dataset_loader_train', 'model' and 'model_persister' from the
configuration ('dataset_loader_test' and 'scoring' to evaluate).

Usage:
  pf-fit [options]

Options:
  -n --no-save                    Fit the model but do not store it.
  --no-activate                   Store the model but do not make it the active one.
  --save-if-better-than=<score>   Store the model only if its score on
                                  'dataset_loader_test' is better than <score>.
  -e --evaluate                   Score the model on the training and test data.
  --queue                         Let a pf-worker fit it (the 'job_queue' entry;
                                  see docs/scaling-out.md) and wait for it.
  --debug                         Show tracebacks of errors.
  -h --help                       Show this screen.
"""


def _web_decorator_error(config) -> ConfigError:
    """What pf-fit says when a decorator of ``fit_decorators`` needs an HTTP request."""
    return ConfigError(
        "a decorator listed here needs an HTTP request (a web guard?), and pf-fit has none: "
        "guard the /fit route with 'server_fit_decorators' instead (docs/security.md)",
        source=", ".join(getattr(config, "sources", ()) or ()) or None,
        key="fit_decorators",
    )


def _fit(args, config) -> int:
    from .. import training
    from ..factory import decorate

    persist = not args["--no-save"]
    threshold = number_option(args["--save-if-better-than"], "--save-if-better-than")
    if args["--queue"]:
        from .queue import fit_on_queue

        return fit_on_queue(args, config, threshold)
    evaluate = bool(args["--evaluate"])
    test_loader = None
    if threshold is not None:
        test_loader = dataset_loader(config, "dataset_loader_test")
    elif evaluate and "dataset_loader_test" in config:
        test_loader = dataset_loader(config, "dataset_loader_test")
    # pf-fit's own list: /fit's route has server_fit_decorators, so no web guard lands here
    fit = decorate(training.fit, config, "fit_decorators")
    try:
        result = fit(
            dataset_loader(config, "dataset_loader_train"),
            config["model"],
            config["model_persister"] if persist else None,
            persist=persist,
            activate=not args["--no-activate"],
            dataset_loader_test=test_loader,
            evaluate=evaluate,
            persist_if_better_than=threshold,
            scoring=config.get("scoring"),
            progress=Progress(),
        )
    except RuntimeError as exc:
        if "request context" not in str(exc):
            raise
        raise _web_decorator_error(config) from None
    print_fit_outcome(
        result.scores,
        result.version,
        activated=not args["--no-activate"],
        persist=persist,
        threshold=threshold,
    )
    return 0


def fit_main(argv: Sequence[str] | None = None) -> int:
    """``pf-fit``: fit the config's model and store it."""
    return run_script(FIT_DOC, argv, _fit, mode="fit", entries=_FIT_ENTRIES)


TEST_DOC = """Test a stored model on the test data.

Uses 'dataset_loader_test', 'model_persister' and 'scoring' from the
configuration.

Usage:
  pf-test [options]

Options:
  --model-version=<version>   The version of the model to test; default:
                              the active model.
  --debug                     Show tracebacks of errors.
  -h --help                   Show this screen.
"""


def _test(args, config) -> int:
    from .. import training

    scores = training.test(
        dataset_loader(config, "dataset_loader_test"),
        config["model_persister"],
        scoring=config.get("scoring"),
        model_version=model_version_option(args["--model-version"], "--model-version"),
        progress=Progress(),
    )
    for name, value in scores.items():
        print(f"{name}: {value:.4f}")
    return 0


def test_main(argv: Sequence[str] | None = None) -> int:
    """``pf-test``: score a stored model on the test data."""
    return run_script(TEST_DOC, argv, _test, mode="fit", entries=_TEST_ENTRIES)


ADMIN_DOC = """Activate or delete a stored model.

Uses 'model_persister' from the configuration.

Usage:
  pf-admin activate <version> [options]
  pf-admin delete <version> [options]
  pf-admin (alias | tag | traffic | promote) [<args>...]

Aliases, tags, traffic splits and promote: pf-admin alias -h.

Options:
  --force     Delete the version even if it is the active model (servers
              then have no model to serve until another one is activated).
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _admin(args, config) -> int:
    version = model_version_option(args["<version>"], "<version>")
    persister = existing_store(config)
    if args["activate"]:
        persister.activate(version)
        print(f"Activated model version {version}")
    else:
        from ..persistence.admin import delete_version

        delete_version(persister, str(version), force=bool(args["--force"]))
        print(f"Deleted model version {version}")
    return 0


def admin_main(argv: Sequence[str] | None = None) -> int:
    """``pf-admin``: activate or delete a stored model (alias, tag, ...: :mod:`.release`)."""
    import sys

    from .release import RELEASE_COMMANDS, release_admin_main

    words = sys.argv[1:] if argv is None else list(argv)
    if words and words[0] in RELEASE_COMMANDS:
        return release_admin_main(words)
    return run_script(ADMIN_DOC, argv, _admin, mode="fit", entries=STORE_ENTRIES, short_lived=True)


GRID_SEARCH_DOC = """Search the model's hyperparameters by cross-validation.

Uses 'dataset_loader_train', 'model' and 'grid_search' (GridSearchCV
arguments such as 'param_grid', 'cv', 'n_jobs', 'scoring', 'verbose', or a
search object built with '__factory__') from the configuration.

Usage:
  pf-grid-search [options]

Options:
  --save-results=<csv>   Write all results (cv_results_) to this CSV file.
  --persist-best         Refit the best candidate on all the training data
                         and store and activate it with 'model_persister'.
  --queue                Let a pf-worker run the search (the 'job_queue'
                         entry; see docs/scaling-out.md) and wait for it.
  --debug                Show tracebacks of errors.
  -h --help              Show this screen.
"""


def _results_table(search) -> str:
    import pandas as pd

    results = pd.DataFrame(search.cv_results_)
    columns = [c for c in results.columns if c.startswith(("rank_test", "mean_test", "std_test"))]
    columns.append("params")
    ranks = [c for c in columns if c.startswith("rank_test")]
    if ranks:
        results = results.sort_values(ranks[0], kind="stable")
    with pd.option_context("display.max_colwidth", 200, "display.width", 200):
        return results[columns].to_string(index=False)


def _grid_search(args, config) -> int:
    from .. import training

    persist = bool(args["--persist-best"])
    if args["--queue"]:
        from .queue import grid_search_on_queue

        return grid_search_on_queue(args, config, _results_table)
    search = training.grid_search(
        dataset_loader(config, "dataset_loader_train"),
        config["model"],
        config["grid_search"],
        scoring=config.get("scoring"),
        save_results=args["--save-results"],
        persist_best=persist,
        model_persister=config["model_persister"] if persist else None,
        progress=Progress(),
    )
    print(_results_table(search))
    if hasattr(search, "best_params_"):
        print(f"Best parameters: {search.best_params_} (score {search.best_score_:.4f})")
    if args["--save-results"]:
        print(f"Saved results to {args['--save-results']}")
    if persist:
        version = getattr(search.best_estimator_, "__metadata__", {}).get("version")
        print(f"Wrote model with version {version}")
    return 0


def grid_search_main(argv: Sequence[str] | None = None) -> int:
    """``pf-grid-search``: search the model's hyperparameters by cross-validation."""
    return run_script(GRID_SEARCH_DOC, argv, _grid_search, mode="fit", entries=_GRID_SEARCH_ENTRIES)


EXPORT_DOC = """Copy a model from 'model_persister' to 'model_persister_export'.

With --to-mlflow, write it as an MLflow model folder instead (for
`mlflow models serve`), its signature made from the mapping of the
'predict_service' (or the one the model came with from MLflow).

Usage:
  pf-export [options]

Options:
  --version=<v>       The version to export; default: the active model.
  --no-activate       Do not activate the model in the export persister.
  --to-mlflow=<dir>   Write the model as the new MLflow model folder <dir>.
  --format=<f>        The model file --to-mlflow writes: pickle (default), cloudpickle or skops.
  --debug             Show tracebacks of errors.
  -h --help           Show this screen.
"""


def _export(args, config) -> int:
    source = config["model_persister"]
    version = model_version_option(args["--version"], "--version")
    if args["--to-mlflow"] is None and args["--format"] is not None:
        raise UsageError("--format goes with --to-mlflow")
    if args["--to-mlflow"] is not None:
        return _export_mlflow(source.read(version=version), args, config)
    target = config["model_persister_export"]
    model = source.read(version=version)
    from_version = getattr(model, "__metadata__", {}).get("version", version)
    new_version = target.write(model)
    if not args["--no-activate"]:
        target.activate(new_version)
    note = " (not activated)" if args["--no-activate"] else ""
    print(f"Exported model version {from_version} as version {new_version}{note}")
    return 0


def _export_mlflow(model: Any, args: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    from ..persistence.mlflow_export import write_mlflow_folder
    from ..persistence.mlflow_folder import model_mapping

    service = config.get("predict_service")
    mapping = getattr(service, "mapping", None) or model_mapping(model)
    folder = write_mlflow_folder(
        model, args["--to-mlflow"], mapping, serialization_format=args["--format"] or "pickle"
    )
    number = getattr(model, "__metadata__", {}).get("version")
    note = "" if mapping else " (without a signature: the config has no predict_service mapping)"
    print(f"Exported model version {number} as the MLflow model {folder}{note}")
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    """``pf-export``: copy a model to the export persister."""
    return run_script(
        EXPORT_DOC,
        argv,
        _export,
        mode="fit",
        entries=("model_persister", "model_persister_export"),
    )


UPGRADE_DOC = """Upgrade the model store to the current storage format.

Uses 'model_persister' from the configuration. Models that Palladium 1.2
wrote into the same database or with the same file path are imported
first, keeping their versions, metadata and active version; Palladium's
own tables and files are left as they are. Last, models stored without a
digest get one (an HMAC with PIPEFORGE_MODEL_KEY set, which also signs models
recorded with a plain SHA-256 that matches). Running it again is harmless.

Usage:
  pf-upgrade [options]

Options:
  --from=<v>   Upgrade from this version instead of the one the store records.
  --to=<v>     Upgrade to this version instead of the installed one
               (never to a newer one).
  --debug      Show tracebacks of errors.
  -h --help    Show this screen.
"""


def upgrade_body(args: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    """``pf-upgrade``'s work (also ``pld-upgrade``'s): run the model store's upgrade steps."""
    from .. import __version__
    from ..persistence.upgrade import check_target

    check_target(args["--to"], __version__)  # before any persister (ours or the user's) runs
    persister = config["model_persister"]
    steps = persister.upgrade(from_version=args["--from"], to_version=args["--to"]) or []
    if steps:
        print("Ran upgrade steps:")
        for step in steps:
            print(f"  {step}")
    else:
        print("Nothing to upgrade")
    return 0


def upgrade_main(argv: Sequence[str] | None = None) -> int:
    """``pf-upgrade``: bring the model store to the current storage format."""
    return run_script(
        UPGRADE_DOC, argv, upgrade_body, mode="fit", entries=STORE_ENTRIES, short_lived=True
    )


VERSION_DOC = """Print the version of pipeforge.

Usage:
  pf-version [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def version_body(args: Mapping[str, Any], config: Mapping[str, Any] | None) -> int:
    """``pf-version``'s work (also ``pld-version``'s): print pipeforge's version."""
    from .. import __version__

    print(__version__)
    return 0


def version_main(argv: Sequence[str] | None = None) -> int:
    """``pf-version``: print pipeforge's version."""
    return run_script(VERSION_DOC, argv, version_body, needs_config=False, short_lived=True)
