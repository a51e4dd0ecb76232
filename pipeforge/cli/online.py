"""``pf-online``: set up, fill and warm up the online models of the configuration."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import RequestError, UsageError
from .run import positive_int_option, run_script

__all__ = ["main"]

DOC = """Manage the online models of the configuration (chantilly's commands).

Uses the 'online_models' and 'online' entries of the configuration named by
PIPEFORGE_CONFIG and its store (see docs/online-learning.md).

Usage:
  pf-online init <flavor> [--debug]
  pf-online add-model <file> [--name=<n>] [--flavor=<f>] [--debug]
  pf-online models [--debug]
  pf-online routes [--debug]
  pf-online replay <name> [--dataset=<key>] [--limit=<n>] [--chunk=<n>] [--debug]
  pf-online -h | --help

Commands:
  init        Erase every online model, id, metric and statistic, set the
              flavor (regression, binary or multiclass) and put the
              config's online models back, unlearnt.
  add-model   Store a pickled model from <file> under <name> (a new name
              when none is given) and make it the default model.
  models      List the stored models: flavor, samples learnt, default.
  routes      List the web service's routes.
  replay      Learn model <name> from a dataset loader of the config, one
              row at a time: predict, then learn (progressive validation),
              and print the metrics of those predictions.

Options:
  --name=<n>        Name of the added model.
  --flavor=<f>      Flavor of the added model (default: the store's flavor).
  --dataset=<key>   Config entry of the dataset loader [default: dataset_loader_train].
  --limit=<n>       Replay at most <n> rows.
  --chunk=<n>       Rows learnt per stored step [default: 500].
  --debug           Show tracebacks of errors.
  -h --help         Show this screen.
"""


def _service(config):
    from ..online.config import read_settings
    from ..online.service import OnlineService

    return OnlineService(read_settings(config))


def _init(service, args) -> None:
    from ..online.flavors import FLAVORS

    if args["<flavor>"] not in FLAVORS:
        raise UsageError(f"<flavor> must be one of {', '.join(FLAVORS)}; got {args['<flavor>']!r}")
    answer = service.init({"flavor": args["<flavor>"]})
    models = service.models()["models"]
    print(f"Erased the online store ({answer['storage']}); flavor is {answer['flavor']}")
    if models:
        print(f"Models from the config: {', '.join(models)}")


def _add_model(service, args) -> None:
    with open(args["<file>"], "rb") as file:
        data = file.read()
    answer = service.add_model(data, name=args["--name"], flavor=args["--flavor"], source="cli")
    print(f"{answer['name']} has been added (and is the default model)")


def _models(service) -> None:
    answer = service.models()
    if not answer["models"]:
        print("No online models; declare online_models in the config or run pf-online add-model")
        return
    rows = [("name", "flavor", "learnt", "scored", "source", "")]
    for name in answer["models"]:
        info = answer["info"][name]
        mark = "default" if name == answer["default"] else ""
        rows.append(
            (
                name,
                info["flavor"],
                str(info["n_learnt"]),
                str(info["n_scored"]),
                info["source"],
                mark,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _routes(config) -> None:
    from ..server.app import create_app

    app = create_app(config)
    rules = sorted(
        app.url_map.iter_rules(), key=lambda rule: (rule.rule, sorted(rule.methods or ()))
    )
    rows = [("methods", "route", "endpoint")]
    for rule in rules:
        if rule.endpoint == "static":
            continue
        methods = ",".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        rows.append((methods, rule.rule, rule.endpoint))
    width0 = max(len(row[0]) for row in rows)
    width1 = max(len(row[1]) for row in rows)
    for methods, route, endpoint in rows:
        print(f"{methods.ljust(width0)}  {route.ljust(width1)}  {endpoint}")


def _plain(value) -> Any:
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rows_of(X: Any, y: Any) -> Iterator[tuple[dict, Any]]:
    """``(features, ground truth)`` pairs from a dataset loader's ``(X, y)``."""
    if y is None:
        raise UsageError(
            "the dataset loader gave no target (y is None); replay needs ground truths"
        )
    targets = y.tolist() if hasattr(y, "tolist") else list(y)
    if hasattr(X, "to_dict") and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
        for values, target in zip(X.itertuples(index=False, name=None), targets, strict=True):
            yield {n: _plain(v) for n, v in zip(names, values, strict=True)}, _plain(target)
        return
    for values, target in zip(X, targets, strict=True):
        if isinstance(values, dict):
            yield dict(values), _plain(target)
        else:
            yield {f"x{i}": _plain(v) for i, v in enumerate(values)}, _plain(target)


def _replay(service, config, args) -> None:
    from itertools import islice

    from ..progress import Progress

    name = args["<name>"]
    limit = positive_int_option(args["--limit"], "--limit")
    chunk = positive_int_option(args["--chunk"], "--chunk")
    key = args["--dataset"]
    known = service.models()
    if name not in known["info"]:
        raise UsageError(
            f"no online model named {name!r} (known: {', '.join(known['models']) or 'none'})"
        )
    progress = Progress()
    progress.stage(f"loading {key}")
    X, y = config[key]()
    if not hasattr(X, "__len__"):
        X = list(X)
    total = len(X) if limit is None else min(limit, len(X))
    progress.start(total, f"replaying {name}")
    try:
        metrics = service.replay(name, islice(rows_of(X, y), total), chunk=chunk, progress=progress)
    except RequestError as exc:
        raise UsageError(f"{key}: {exc}") from None
    progress.finish()
    scored = metrics.pop("n", total)
    info = service.models()["info"][name]
    print(f"Learnt {total} rows of {key} into {name!r} (now {info['n_learnt']} samples learnt)")
    print(f"Progressive validation on those rows ({scored} predictions scored):")
    for metric, value in metrics.items():
        print(f"  {metric:15} {value:.6g}")


def _body(args, config) -> int:
    if args["routes"]:
        _routes(config)
        return 0
    service = _service(config)
    try:
        if args["init"]:
            _init(service, args)
        elif args["add-model"]:
            _add_model(service, args)
        elif args["models"]:
            _models(service)
        elif args["replay"]:
            _replay(service, config, args)
    finally:
        service.store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``pf-online``: the online-learning commands."""
    return run_script(DOC, argv, _body, mode="fit")
