"""The ``pld-*`` commands: Palladium's scripts, with Palladium's options and outputs, run by pipeforge.

A Palladium project's shell scripts, cron jobs and Dockerfiles call
``pld-fit``, ``pld-list``, ...; these run pipeforge's script bodies, but
speak as Palladium did: ``pld-list`` and ``pld-grid-search`` print what
Palladium printed, ``pld-fit``/``pld-test``/``pld-admin``/``pld-export``
report through the ``palladium`` logger in Palladium's words (on stderr,
unless the config's ``logging`` entry says otherwise), ``pld-devserver``
listens on ``0.0.0.0`` by default. Errors and exit statuses are pipeforge's
(:func:`pipeforge.cli.run_script`). Heavy imports stay inside the bodies.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from ..cli import scripts
from ..cli import serve as serve_scripts
from ..cli.run import run_script
from ..errors import PipeforgeError, UsageError

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
    "print_listing",
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

    threshold = scripts._float_option(args["--save-if-better-than"], "--save-if-better-than")
    evaluate = bool(args["--evaluate"]) or threshold is not None
    persist = not args["--no-save"]
    test_loader = None
    if evaluate and (threshold is not None or "dataset_loader_test" in config):
        test_loader = scripts._loader(config, "dataset_loader_test")
    fit = decorate(training.fit, config, "fit_decorators")
    result = fit(
        scripts._loader(config, "dataset_loader_train"),
        config["model"],
        config["model_persister"] if persist else None,
        persist=persist,
        activate=not args["--no-activate"],
        dataset_loader_test=test_loader,
        evaluate=evaluate,
        # Palladium stored a model whose score equals the threshold; pipeforge wants "better".
        persist_if_better_than=None if threshold is None else math.nextafter(threshold, -math.inf),
        scoring=config.get("scoring"),
        progress=scripts._progress(),
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
    version = scripts._int_option(args["--model-version"], "--model-version")
    scoring = config.get("scoring")
    if scoring is not None and not isinstance(scoring, dict):
        scoring = {"score": scoring}  # Palladium called a single scorer "score"
    scores = training.test(
        scripts._loader(config, "dataset_loader_test"),
        persister,
        scoring=scoring,
        model_version=version,
        progress=scripts._progress(),
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


def print_listing(persister) -> None:
    """Print ``Models:`` and ``Properties:`` each followed by its pretty-printed value, as Palladium."""
    from pprint import pprint

    print("Models:")
    pprint(persister.list_models())
    print("Properties:")
    pprint(persister.list_properties())


def _list(args, config) -> int:
    print_listing(config["model_persister"])
    return 0


def pld_list_main(argv: Sequence[str] | None = None) -> int:
    return run_script(
        LIST_DOC, argv, _list, mode="fit", entries=scripts._STORE_ENTRIES, short_lived=True
    )


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
    version = scripts._int_option(args["<version>"], "<version>")
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
        entries=scripts._STORE_ENTRIES,
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


def results_frame(search):
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
        scripts._loader(config, "dataset_loader_train"),
        config["model"],
        config["grid_search"],
        scoring=config.get("scoring"),
        persist_best=persist,
        model_persister=config["model_persister"] if persist else None,
        progress=scripts._progress(),
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


def _stream(args, config) -> int:
    return scripts._stream({"--model-version": None, **args}, config, prog="pld-stream")


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
    model = source.read(version=scripts._int_option(args["--version"], "--version"))
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
        scripts._upgrade,
        mode="fit",
        entries=scripts._STORE_ENTRIES,
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
    return run_script(VERSION_DOC, argv, scripts._version, needs_config=False, short_lived=True)


# -- pld-devserver, pld-dockerize -----------------------------------------------------

DEVSERVER_DOC = """Serve the web API for development (Palladium's pld-devserver, run by pipeforge).

Serves the app 'palladium.server.app' of the configuration, as
'gunicorn palladium.wsgi:app' does; use gunicorn for anything but development.

Usage:
  pld-devserver [options]

Options:
  --host=<host>     The interface to listen on [default: 0.0.0.0].
  --port=<port>     The port to listen on [default: 5000].
  --debug=<debug>   1: Flask debug mode, and tracebacks of startup errors [default: 0].
  -h --help         Show this screen.
"""


def _devserver(args, config) -> None:
    from .legacy import shared_app

    serve_scripts.serve(args, config, flask_app=shared_app())


def pld_devserver_main(argv: Sequence[str] | None = None) -> int:
    argv = serve_scripts.bare_debug_means_one(argv)
    return run_script(DEVSERVER_DOC, argv, _devserver, mode="predict")


DOCKERIZE_DOC = """Write (and build) Docker images for an application (Palladium's pld-dockerize, run by pipeforge).

PATH_TO_APP holds config.py (and optionally requirements.txt, a
python_packages/ folder and setup.py). BASE_IMAGE_NAME must have pipeforge
installed. Dockerfile-app and Dockerfile-predict are written into the
current directory, as Palladium did; IMAGE_NAME gets the application,
IMAGE_NAME-predict also fits the model and serves palladium.wsgi:app with
gunicorn on port 8000.

Usage:
  pld-dockerize [options] PATH_TO_APP BASE_IMAGE_NAME IMAGE_NAME

Options:
  -d          Write the Dockerfiles but do not build the images.
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""

# pipeforge's Dockerfiles, spoken in Palladium's names.
_PALLADIUM_WORDS = (
    ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG"),
    ("pipeforge.wsgi:app", "palladium.wsgi:app"),
    ("RUN pf-fit", "RUN pld-fit"),
    ("pf-dockerize", "pld-dockerize"),
)


def _dockerize(args, config) -> int:
    from ..cli import dockerize

    app_dir = args["PATH_TO_APP"]
    if not os.path.isdir(app_dir):
        raise UsageError(f"PATH_TO_APP {app_dir!r} is not a directory")
    image = args["IMAGE_NAME"]
    files = dockerize.dockerfiles(app_dir, args["BASE_IMAGE_NAME"], image)
    engine = [] if args["-d"] else dockerize.find_engine()  # before anything is written
    for name, text in files.items():
        for ours, theirs in _PALLADIUM_WORDS:
            text = text.replace(ours, theirs)
        with open(name, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {name}")
    # The build context gets what pf-dockerize writes there: what stays out, the pinned versions.
    for name, text in (
        (".dockerignore", dockerize.dockerignore(app_dir)),
        ("requirements-lock.txt", dockerize.requirements_lock(app_dir)),
    ):
        print(dockerize._write(os.path.join(app_dir, name), text, False))
    if args["-d"]:
        return 0
    for dockerfile, tag in (
        ("Dockerfile-app", image),
        ("Dockerfile-predict", dockerize.predict_image_name(image)),
    ):
        command = [*engine, "build", "-f", dockerfile, "-t", tag, app_dir]
        print("running: " + " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            raise PipeforgeError(f"building {tag} failed (see the output of the build above)")
        print(f"built {tag}")
    return 0


def pld_dockerize_main(argv: Sequence[str] | None = None) -> int:
    return run_script(DOCKERIZE_DOC, argv, _dockerize, needs_config=False)
