"""The ``pf-*`` command-line scripts; each ``*_main(argv=None)`` returns its exit status.

The docstrings are the docopt usage texts. :func:`pipeforge.cli.run_script`
parses them, loads the config named by ``PIPEFORGE_CONFIG`` and maps errors to
exit statuses. This module is imported by ``pf-version``, so everything heavy
is imported inside the script bodies.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from ..errors import UsageError
from .run import run_script

__all__ = [
    "fit_main",
    "test_main",
    "list_main",
    "admin_main",
    "grid_search_main",
    "stream_main",
    "export_main",
    "upgrade_main",
    "version_main",
]


def _int_option(value, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be an integer model version; got {value!r}") from None


def _float_option(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number; got {value!r}") from None


def _loader(config, key: str):
    """The dataset loader ``key`` wrapped in the config's ``load_data_decorators``."""
    from ..factory import decorate

    return decorate(config[key], config, "load_data_decorators")


# The config entries each script uses; only these are built (see run_script).
_STORE_ENTRIES = ("model_persister",)
_TRAINING = ("dataset_loader_train", "model", "scoring", "load_data_decorators")
_FIT_ENTRIES = (*_TRAINING, "dataset_loader_test", "model_persister", "fit_decorators")
_TEST_ENTRIES = ("dataset_loader_test", "model_persister", "scoring", "load_data_decorators")
_GRID_SEARCH_ENTRIES = (*_TRAINING, "grid_search", "model_persister")


def _progress():
    from ..progress import Progress

    return Progress()


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


def _fit(args, config) -> int:
    from .. import training
    from ..factory import decorate

    persist = not args["--no-save"]
    threshold = _float_option(args["--save-if-better-than"], "--save-if-better-than")
    if args["--queue"]:
        from .queue import fit_on_queue

        return fit_on_queue(args, config, threshold)
    evaluate = bool(args["--evaluate"])
    test_loader = None
    if threshold is not None:
        test_loader = _loader(config, "dataset_loader_test")
    elif evaluate and "dataset_loader_test" in config:
        test_loader = _loader(config, "dataset_loader_test")
    fit = decorate(training.fit, config, "fit_decorators")
    result = fit(
        _loader(config, "dataset_loader_train"),
        config["model"],
        config["model_persister"] if persist else None,
        persist=persist,
        activate=not args["--no-activate"],
        dataset_loader_test=test_loader,
        evaluate=evaluate,
        persist_if_better_than=threshold,
        scoring=config.get("scoring"),
        progress=_progress(),
    )
    for name, value in result.scores.items():
        print(f"{name}: {value:.4f}")
    if result.version is not None:
        note = " (not activated)" if args["--no-activate"] else ""
        print(f"Wrote model with version {result.version}{note}")
    elif persist:
        print(f"Model not stored: its test score is not better than {threshold}")
    else:
        print("Model not stored (--no-save)")
    return 0


def fit_main(argv: Sequence[str] | None = None) -> int:
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
        _loader(config, "dataset_loader_test"),
        config["model_persister"],
        scoring=config.get("scoring"),
        model_version=_int_option(args["--model-version"], "--model-version"),
        progress=_progress(),
    )
    for name, value in scores.items():
        print(f"{name}: {value:.4f}")
    return 0


def test_main(argv: Sequence[str] | None = None) -> int:
    return run_script(TEST_DOC, argv, _test, mode="fit", entries=_TEST_ENTRIES)


LIST_DOC = """List the stored models and the properties of the model store.

Each version shows when it was trained, on how much data, how long fitting
took, its scores (pf-fit -e, pf-test, pf-grid-search) and its estimator's
parameters. Uses 'model_persister' from the configuration.

Usage:
  pf-list [options]
  pf-list --compare <version> <version>... [options]

Options:
  --compare   Show the given versions side by side; rows whose values
              differ are marked with '*'.
  --json      Print {"models": [...], "properties": {...}} as JSON (with
              --compare: {"versions": [...], "rows": [{"key", "values",
              "differs"}, ...]}).
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""

_LIST_WIDTH = 100


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (str, int)):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def _param(value) -> str:
    """A parameter as written in Python (``C=0.3``, ``class_weight=None``)."""
    return value if isinstance(value, str) else repr(value)


def _wrapped(label: str, items: list[str]) -> list[str]:
    """``label`` then the items, several a line, never splitting an item."""
    lines, line = [], f"    {label:<12}"
    indent, empty = " " * 16, True
    for item in items:
        if not empty and len(line) + 2 + len(item) > _LIST_WIDTH:
            lines.append(line)
            line, empty = indent, True
        line += item if empty else "  " + item
        empty = False
    lines.append(line.rstrip())
    return lines


def _model_lines(model: dict, active: str) -> list[str]:
    version = model.get("version", "?")
    mark = " (active)" if str(version) == active else ""
    lines = [f"  version {version}{mark}"]
    trained = model.get("train_timestamp")
    if trained:
        facts = []
        if "fit_seconds" in model:
            facts.append(f"fit in {_value(model['fit_seconds'])} s")
        if "train_rows" in model:
            size = f"{model['train_rows']} rows"
            if "train_features" in model:
                size += f" x {model['train_features']} features"
            facts.append(size)
        lines.append(
            f"    {'trained at':<12}{trained}" + (f" ({', '.join(facts)})" if facts else "")
        )
    if "estimator" in model:
        lines.append(f"    {'estimator':<12}{model['estimator']}")
    scores = [f"{k}={_value(v)}" for k, v in model.items() if k.startswith("score_")]
    if scores:
        lines.extend(_wrapped("scores", scores))
    params = model.get("params")
    if isinstance(params, dict) and params:
        lines.extend(_wrapped("params", [f"{k}={_param(v)}" for k, v in params.items()]))
    shown = {"version", "train_timestamp", "fit_seconds", "train_rows", "train_features"}
    shown |= {"estimator", "params"}
    rest = [
        f"{k}={_value(v)}"
        for k, v in model.items()
        if k not in shown and not k.startswith("score_")
    ]
    if rest:
        lines.extend(_wrapped("other", rest))
    return lines


def _compare(persister, versions: list[str], as_json: bool) -> int:
    from ..model_info import compare

    wanted = [_int_option(v, "<version>") for v in versions]
    models = {m.get("version"): m for m in persister.list_models()}
    missing = [v for v in wanted if v not in models]
    if missing:
        from ..errors import UnknownVersionError

        raise UnknownVersionError(missing[0], sorted(models))
    active = persister.list_properties().get("active-model")
    rows = compare([models[v] for v in wanted], active=active)
    if as_json:
        body = {"versions": wanted, "rows": [row.as_dict() for row in rows]}
        print(json.dumps(body, default=str, indent=2))
        return 0
    header = ["", "", *[f"version {v}" for v in wanted]]
    table = [header]
    for row in rows:
        values = [_cell(v, row.key) for v in row.values]
        table.append(["*" if row.differs else "", row.key, *values])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    differ = sum(row.differs for row in rows)
    print(f"{differ} of {len(rows)} rows differ (marked *)")
    return 0


def _cell(value, key: str) -> str:
    if key == "active":
        return "yes" if value else "no"
    if value is None:
        return "-"
    text = _param(value) if key.startswith("params.") else _value(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _list(args, config) -> int:
    persister = config["model_persister"]
    if args["--compare"]:
        return _compare(persister, args["<version>"], args["--json"])
    models = persister.list_models()
    properties = persister.list_properties()
    if args["--json"]:
        print(json.dumps({"models": models, "properties": properties}, default=str, indent=2))
        return 0
    active = str(properties.get("active-model", ""))
    if not models:
        print("No models stored yet.")
    else:
        print("Models:")
        for model in models:
            for line in _model_lines(model, active):
                print(line)
    print("Properties:")
    for key, value in properties.items():
        print(f"  {key}: {_value(value)}")
    return 0


def list_main(argv: Sequence[str] | None = None) -> int:
    return run_script(LIST_DOC, argv, _list, mode="fit", entries=_STORE_ENTRIES, short_lived=True)


ADMIN_DOC = """Activate or delete a stored model.

Uses 'model_persister' from the configuration.

Usage:
  pf-admin activate <version> [options]
  pf-admin delete <version> [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _admin(args, config) -> int:
    version = _int_option(args["<version>"], "<version>")
    persister = config["model_persister"]
    if args["activate"]:
        persister.activate(version)
        print(f"Activated model version {version}")
    else:
        persister.delete(version)
        print(f"Deleted model version {version}")
    return 0


def admin_main(argv: Sequence[str] | None = None) -> int:
    return run_script(ADMIN_DOC, argv, _admin, mode="fit", entries=_STORE_ENTRIES, short_lived=True)


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
        _loader(config, "dataset_loader_train"),
        config["model"],
        config["grid_search"],
        scoring=config.get("scoring"),
        save_results=args["--save-results"],
        persist_best=persist,
        model_persister=config["model_persister"] if persist else None,
        progress=_progress(),
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
    return run_script(GRID_SEARCH_DOC, argv, _grid_search, mode="fit", entries=_GRID_SEARCH_ENTRIES)


STREAM_DOC = """Predict samples read from stdin, one JSON list of samples per line.

Each input line is a JSON list of samples (objects with the fields of the
'predict_service' mapping, or lists of feature values); each output line is
the JSON list of their predictions. The line 'exit' (or end of input) ends
the stream. A bad line gets an error object as its output line
({"metadata": {"status": "ERROR", "error_message": ...}}), also reported
on stderr, and the stream goes on: output line N always answers input line N.
Uses 'model_persister' and 'predict_service' from the configuration.

Usage:
  pf-stream [options]

Options:
  --model-version=<version>   Predict with this model version; default:
                              the active model.
  --debug                     Show tracebacks of errors.
  -h --help                   Show this screen.
"""


def _service_for_stream(service):
    """A PredictService to convert samples with, or ``None`` when samples must be rows."""
    if service is None or hasattr(service, "sample_from_data"):
        return service
    mapping = getattr(service, "mapping", None)
    if not mapping:
        return None
    from ..server.predict_service import PredictService

    return PredictService(mapping=mapping, predict_proba=getattr(service, "predict_proba", False))


def _rows_from_samples(samples, service, model):
    """Turn one input line's samples into what ``model.predict`` takes."""
    import numpy as np

    from ..errors import RequestError

    if not isinstance(samples, list):
        raise RequestError(f"expected a JSON list of samples; got {type(samples).__name__}")
    if service is None:
        if all(isinstance(s, list) for s in samples):
            return np.asarray(samples)
        raise RequestError(
            "samples must be lists of feature values unless the config has a "
            "'predict_service' with a 'mapping'"
        )
    validate = getattr(service, "validate", None)
    if callable(validate):
        validate()
    rows = []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise RequestError(f"sample {index} must be a JSON object; got {sample!r}")
        try:
            rows.append(service.sample_from_data(model, sample))
        except RequestError as exc:
            raise RequestError(f"sample {index}: {exc}") from None
    names = [name for name, _ in service.mapping]
    if hasattr(model, "feature_names_in_"):  # fitted on a DataFrame: same columns
        import pandas as pd

        return pd.DataFrame(rows, columns=names)
    numeric = all(str(t) in ("float", "int") for _, t in service.mapping)
    return np.array(rows, dtype=float if numeric else object).reshape(len(rows), len(names))


def _predictions(service, model, X):
    from ..errors import PipeforgeError, PredictError

    try:
        if service is not None and hasattr(service, "predict"):
            y = service.predict(model, X)
        else:
            y = model.predict(X)
    except PipeforgeError:
        raise
    except Exception as exc:
        raise PredictError(f"the model failed to predict: {type(exc).__name__}: {exc}") from exc
    y = y.tolist() if hasattr(y, "tolist") else list(y)
    classes = getattr(model, "classes_", None)
    if getattr(service, "predict_proba", False) and classes is not None:
        labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
        y = [dict(zip([str(c) for c in labels], row, strict=False)) for row in y]
    return y


def _stream(args, config, prog: str = "pf-stream") -> int:
    from ..errors import PipeforgeError, PredictError, RequestError
    from ..server.predict_service import error_body

    persister = config["model_persister"]
    service = _service_for_stream(config.get("predict_service"))
    version = _int_option(args["--model-version"], "--model-version")
    model = persister.read(version=version)
    for number, line in enumerate(sys.stdin, start=1):
        line = line.strip()
        if line.lower() == "exit":
            break
        try:
            if not line:
                raise RequestError("empty line; expected a JSON list of samples")
            try:
                samples = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RequestError(f"not valid JSON: {exc}") from None
            if version is None:  # the cache may hold a newer model by now
                model = persister.read()
            X = _rows_from_samples(samples, service, model)
            print(json.dumps(_predictions(service, model, X)), flush=True)
        except Exception as exc:  # one bad line must not end the stream
            if isinstance(exc, PredictError):
                message = exc.error_message
            elif isinstance(exc, PipeforgeError):
                message = str(exc)
            else:
                logging.getLogger(__name__).exception("line %d failed", number)
                message = f"{type(exc).__name__}: {exc}"
            print(f"{prog}: error: line {number}: {message}", file=sys.stderr, flush=True)
            metadata = config.get("service_metadata")
            code = getattr(exc, "error_code", -1)
            body = error_body(
                metadata, f"line {number}: {message}", code if isinstance(code, int) else -1
            )
            print(json.dumps(body, default=str), flush=True)
    return 0


def stream_main(argv: Sequence[str] | None = None) -> int:
    return run_script(
        STREAM_DOC, argv, _stream, mode="predict", entries=("model_persister", "predict_service")
    )


EXPORT_DOC = """Copy a model from 'model_persister' to 'model_persister_export'.

Usage:
  pf-export [options]

Options:
  --version=<v>   The version to export; default: the active model.
  --no-activate   Do not activate the model in the export persister.
  --debug         Show tracebacks of errors.
  -h --help       Show this screen.
"""


def _export(args, config) -> int:
    source = config["model_persister"]
    target = config["model_persister_export"]
    version = _int_option(args["--version"], "--version")
    model = source.read(version=version)
    from_version = getattr(model, "__metadata__", {}).get("version", version)
    new_version = target.write(model)
    if not args["--no-activate"]:
        target.activate(new_version)
    note = " (not activated)" if args["--no-activate"] else ""
    print(f"Exported model version {from_version} as version {new_version}{note}")
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
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
own tables and files are left as they are. Running it again is harmless.

Usage:
  pf-upgrade [options]

Options:
  --from=<v>   Upgrade from this version instead of the one the store records.
  --to=<v>     Upgrade to this version instead of the installed one
               (never to a newer one).
  --debug      Show tracebacks of errors.
  -h --help    Show this screen.
"""


def _upgrade(args, config) -> int:
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
    return run_script(
        UPGRADE_DOC, argv, _upgrade, mode="fit", entries=_STORE_ENTRIES, short_lived=True
    )


VERSION_DOC = """Print the version of pipeforge.

Usage:
  pf-version [options]

Options:
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""


def _version(args, config) -> int:
    from .. import __version__

    print(__version__)
    return 0


def version_main(argv: Sequence[str] | None = None) -> int:
    return run_script(VERSION_DOC, argv, _version, needs_config=False, short_lived=True)
