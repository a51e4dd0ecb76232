"""The ``pld-*`` model commands: Palladium's scripts, with Palladium's options and outputs.

A Palladium project's shell scripts, cron jobs and Dockerfiles call
``pld-fit``, ``pld-list``, ...; these run pipeforge's training and model
store, but speak as Palladium did: ``pld-list`` and ``pld-grid-search``
print what Palladium printed, ``pld-fit``/``pld-test``/``pld-admin``/``pld-export``
report through the ``palladium`` logger in Palladium's words (on stderr,
unless the config's ``logging`` entry says otherwise). Errors and exit
statuses are pipeforge's (:func:`pipeforge.cli.run_script`). Heavy imports
stay inside the bodies. The serving commands (``pld-devserver``,
``pld-dockerize``) are :mod:`pipeforge.palladium_compat.serve`; their
``*_main`` are also importable from here, as in earlier versions.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..cli.models import STORE_ENTRIES, dataset_loader, upgrade_body, version_body
from ..cli.run import model_version_option, number_option, run_script
from ..cli.stream import predict_stream
from ..progress import Progress
from .serve import pld_devserver_main, pld_dockerize_main
from .workflow import print_listing

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "pld_fit_main",
    "pld_test_main",
    "pld_list_main",
    "pld_admin_main",
    "pld_grid_search_main",
    "pld_stream_main",
    "pld_export_main",
    "pld_upgrade_main",
    "pld_version_main",
    "pld_devserver_main",
    "pld_dockerize_main",
]

logger = logging.getLogger("palladium")


def _palladium_logging(body: Callable) -> Callable:
    """Run ``body`` with Palladium's log output: ``INFO:palladium:...`` lines on stderr.

    Palladium logged its progress this way when the config had no
    ``logging`` entry; pipeforge's own INFO lines are held back meanwhile
    so nothing is said twice.
    """

    def wrapped(args, config):
        if config is not None and "logging" in config:
            return body(args, config)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        ours, theirs = logging.getLogger("pipeforge"), logger
        saved = ours.level, theirs.level, theirs.propagate
        theirs.addHandler(handler)
        theirs.setLevel(logging.INFO)
        theirs.propagate = False
        ours.setLevel(logging.WARNING)
        try:
            return body(args, config)
        finally:
            theirs.removeHandler(handler)
            ours.setLevel(saved[0])
            theirs.setLevel(saved[1])
            theirs.propagate = saved[2]

    return wrapped


# -- pld-fit --------------------------------------------------------------------------

FIT_DOC = """Fit a model and store it (Palladium's pld-fit, run by pipeforge).

Uses 'dataset_loader_train', 'model' and 'model_persister' from the
configuration, and 'dataset_loader_test' to evaluate.

Usage:
  pld-fit [options]

Options:
  -n --no-save                Fit the model but do not store it.
  --no-activate               Store the model but keep the active model as it is.
  --save-if-better-than=<k>   Store the model only if its test score is not
                              lower than <k> (implies --evaluate).
  -e --evaluate               Score the fitted model on the training and test data.
  --debug                     Show tracebacks of errors.
  -h --help                   Show this screen.
"""


def _fit(args, config) -> int:
    from .. import training
    from ..factory import decorate

    threshold = number_option(args["--save-if-better-than"], "--save-if-better-than")
    evaluate = bool(args["--evaluate"]) or threshold is not None
    persist = not args["--no-save"]
    test_loader = None
    if evaluate and (threshold is not None or "dataset_loader_test" in config):
        test_loader = dataset_loader(config, "dataset_loader_test")
    fit = decorate(training.fit, config, "fit_decorators")
    result = fit(
        dataset_loader(config, "dataset_loader_train"),
        config["model"],
        config["model_persister"] if persist else None,
        persist=persist,
        activate=not args["--no-activate"],
        dataset_loader_test=test_loader,
        evaluate=evaluate,
        # Palladium stored a model whose score equals the threshold; pipeforge wants "better".
        persist_if_better_than=None if threshold is None else math.nextafter(threshold, -math.inf),
        scoring=config.get("scoring"),
        progress=Progress(),
    )
    for name, value in result.scores.items():
        label = {"score_train": "Train score:", "score_test": "Test score: "}.get(name)
        logger.info("%s %s", label or f"{name}:", value)
    if result.version is not None:
        logger.info("Wrote model with version %s.", result.version)
    elif persist:
        score = result.scores.get("score_test")
        logger.info("Not persisting model that has a test score %s < %s", score, threshold)
    return 0


def pld_fit_main(argv: Sequence[str] | None = None) -> int:
    return run_script(FIT_DOC, argv, _palladium_logging(_fit), mode="fit")


# -- pld-test -------------------------------------------------------------------------

TEST_DOC = """Test a stored model on the test data (Palladium's pld-test, run by pipeforge).

Uses 'dataset_loader_test' and 'model_persister' from the configuration.

Usage:
  pld-test [options]

Options:
  --model-version=<version>   The version of the model to test; default: the
                              active model.
  --debug                     Show tracebacks of errors.
  -h --help                   Show this screen.
"""


def _test(args, config) -> int:
    from .. import training

    persister = config["model_persister"]
    version = model_version_option(args["--model-version"], "--model-version")
    scoring = config.get("scoring")
    if scoring is not None and not isinstance(scoring, dict):
        scoring = {"score": scoring}  # Palladium called a single scorer "score"
    scores = training.test(
        dataset_loader(config, "dataset_loader_test"),
        persister,
        scoring=scoring,
        model_version=version,
        progress=Progress(),
    )
    if version is None:
        version = persister.list_properties().get("active-model")
    logger.info("Loaded model version %s", version)
    lines = [f"{name}: {value}" for name, value in scores.items()]
    logger.info("Score: %s.", "\n       ".join(lines))
    return 0


def pld_test_main(argv: Sequence[str] | None = None) -> int:
    return run_script(TEST_DOC, argv, _palladium_logging(_test), mode="fit")


# -- pld-list -------------------------------------------------------------------------

LIST_DOC = """List the stored models and their metadata (Palladium's pld-list, run by pipeforge).

Uses 'model_persister' from the configuration.

Usage:
  pld-list [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _list(args, config) -> int:
    print_listing(config["model_persister"])
    return 0


def pld_list_main(argv: Sequence[str] | None = None) -> int:
    return run_script(LIST_DOC, argv, _list, mode="fit", entries=STORE_ENTRIES, short_lived=True)


# -- pld-admin ------------------------------------------------------------------------

ADMIN_DOC = """Activate or delete a stored model (Palladium's pld-admin, run by pipeforge).

'activate' makes <version> the model that is served and tested by default;
'pld-list' shows the versions there are. 'delete' removes a model.

Usage:
  pld-admin activate <version> [options]
  pld-admin delete <version> [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _admin(args, config) -> int:
    version = model_version_option(args["<version>"], "<version>")
    persister = config["model_persister"]
    if args["activate"]:
        persister.activate(version)
        logger.info("Activated model with version %s.", version)
    else:
        persister.delete(version)
        logger.info("Deleted model with version %s.", version)
    return 0


def pld_admin_main(argv: Sequence[str] | None = None) -> int:
    return run_script(
        ADMIN_DOC,
        argv,
        _palladium_logging(_admin),
        mode="fit",
        entries=STORE_ENTRIES,
        short_lived=True,
    )


# -- pld-grid-search ------------------------------------------------------------------

GRID_SEARCH_DOC = """Search the model's hyperparameters (Palladium's pld-grid-search, run by pipeforge).

Uses 'dataset_loader_train', 'model' and 'grid_search' from the
configuration; prints the table of all candidates, best first.

Usage:
  pld-grid-search [options]

Options:
  --save-results=<fname>   Also write the table to this CSV file.
  --persist-best           Store (and activate) the best model.
  --debug                  Show tracebacks of errors.
  -h --help                Show this screen.
"""


def results_frame(search: Any) -> pd.DataFrame:
    """``cv_results_`` as a DataFrame, best rank first when there is a single score."""
    import pandas as pd

    results = pd.DataFrame(search.cv_results_)
    if "rank_test_score" in results:
        results = results.sort_values("rank_test_score")
    return results


def _grid_search(args, config) -> int:
    import pandas as pd

    from .. import training

    persist = bool(args["--persist-best"])
    search = training.grid_search(
        dataset_loader(config, "dataset_loader_train"),
        config["model"],
        config["grid_search"],
        scoring=config.get("scoring"),
        persist_best=persist,
        model_persister=config["model_persister"] if persist else None,
        progress=Progress(),
    )
    results = results_frame(search)
    with pd.option_context(
        "display.max_rows", len(results), "display.max_columns", len(results.columns)
    ):
        print(results)
    if args["--save-results"]:
        results.to_csv(args["--save-results"], index=False)
    if persist:
        version = getattr(search.best_estimator_, "__metadata__", {}).get("version")
        logger.info("Wrote model with version %s.", version)
    return 0


def pld_grid_search_main(argv: Sequence[str] | None = None) -> int:
    return run_script(GRID_SEARCH_DOC, argv, _palladium_logging(_grid_search), mode="fit")


# -- pld-stream -----------------------------------------------------------------------

STREAM_DOC = """Predict samples read from stdin, one line at a time (Palladium's pld-stream, run by pipeforge).

Each input line is a JSON list of samples, e.g.
  [{"sepal length": 6.3, "sepal width": 2.5, "petal length": 4.9, "petal width": 1.5}]
and gets one output line, the JSON list of their predictions, e.g.
  ["Iris-virginica"]
A bad line gets an error object instead (also reported on stderr) and the
stream goes on. The line 'exit' ends the stream.

Usage:
  pld-stream [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _stream(args: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    return predict_stream(config, prog="pld-stream")


def pld_stream_main(argv: Sequence[str] | None = None) -> int:
    return run_script(STREAM_DOC, argv, _stream, mode="predict")


# -- pld-export, pld-upgrade, pld-version ---------------------------------------------

EXPORT_DOC = """Copy a model from one model persister to another (Palladium's pld-export, run by pipeforge).

Copies from 'model_persister' to 'model_persister_export' of the configuration.

Usage:
  pld-export [options]

Options:
  --version=<v>   Export this version rather than the active model.
  --no-activate   Do not activate the model in 'model_persister_export'.
  --debug         Show tracebacks of errors.
  -h --help       Show this screen.
"""


def _export(args, config) -> int:
    source, target = config["model_persister"], config["model_persister_export"]
    model = source.read(version=model_version_option(args["--version"], "--version"))
    version = target.write(model)
    if not args["--no-activate"]:
        target.activate(version)
    logger.info("Exported model. New version number: %s", version)
    return 0


def pld_export_main(argv: Sequence[str] | None = None) -> int:
    return run_script(EXPORT_DOC, argv, _palladium_logging(_export), mode="fit")


UPGRADE_DOC = """Upgrade the model store to the current format (Palladium's pld-upgrade, run by pipeforge).

Usage:
  pld-upgrade [options]

Options:
  --from=<v>   Upgrade from this version instead of the one the store records.
  --to=<v>     Upgrade to this version instead of the newest.
  --debug      Show tracebacks of errors.
  -h --help    Show this screen.
"""


def pld_upgrade_main(argv: Sequence[str] | None = None) -> int:
    return run_script(
        UPGRADE_DOC,
        argv,
        upgrade_body,
        mode="fit",
        entries=STORE_ENTRIES,
        short_lived=True,
    )


VERSION_DOC = """Print the version number (of pipeforge, which runs Palladium's commands).

Usage:
  pld-version [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def pld_version_main(argv: Sequence[str] | None = None) -> int:
    return run_script(VERSION_DOC, argv, version_body, needs_config=False, short_lived=True)
