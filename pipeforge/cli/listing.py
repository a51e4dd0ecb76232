"""``pf-list``: the stored models, one block each, or several side by side.

Each version shows when it was trained, on how much data, how long fitting
took, its scores and its estimator's parameters, wrapped at 100 columns;
``--compare`` lays versions out as a table whose differing rows are
marked (the rows come from :func:`pipeforge.model_info.compare`), and
``--json`` prints the same as data for other programs. A model store that
does not exist yet (an SQLite file nobody wrote) is said, never created.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .run import STORE_ENTRIES, existing_store, model_version_option, run_script

__all__ = ["list_main"]


LIST_DOC = """List the stored models and the properties of the model store.

Each version shows its aliases, its tags, when it was trained, on how much
data, how long fitting took, its scores (pf-fit -e, pf-test,
pf-grid-search), its live score (from a predict service's prediction log
and feedback) and its estimator's parameters; the stored traffic splits
follow. Uses 'model_persister' from the configuration.

Usage:
  pf-list [options]
  pf-list --compare <version> <version>... [options]

Options:
  --compare   Show the given versions side by side; rows whose values
              differ are marked with '*'.
  --json      Print {"models": [...], "properties": {...}, "aliases": {...},
              "traffic": {...}} as JSON (with
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


def _model_lines(model: dict, active: str, named: list[str] | None = None) -> list[str]:
    version = model.get("version", "?")
    marks = named if named is not None else (["active"] if str(version) == active else [])
    mark = f" ({', '.join(marks)})" if marks else ""
    lines = [f"  version {version}{mark}"]
    tags = model.get("tags")
    if isinstance(tags, dict) and tags:
        lines.extend(_wrapped("tags", [f"{k}={v}" for k, v in tags.items()]))
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
    shown |= {"estimator", "params", "training_summary", "tags"}
    summary = model.get("training_summary")
    if isinstance(summary, dict) and isinstance(summary.get("features"), list):
        lines.append(f"    {'inputs':<12}{len(summary['features'])} features summarized for drift")
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

    wanted = [model_version_option(v, "<version>") for v in versions]
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


def _live_scores(config, persister) -> dict:
    """Each version's live score from the services' prediction logs (none without a log)."""
    from ..release.live_scores import scores_in

    return {score.version: score for score in scores_in(config, persister)}


def _live_line(score) -> str:
    text = f"{score.metric}={_value(score.score)} over {score.n} samples with feedback"
    return f"    {'live score':<12}{text}"


def _list(args, config) -> int:
    persister = existing_store(config)
    if args["--compare"]:
        return _compare(persister, args["<version>"], args["--json"])
    from ..release.aliases import release_listing

    models = persister.list_models()
    properties = persister.list_properties()
    release = release_listing(models, properties)
    live = _live_scores(config, persister)
    if args["--json"]:
        for model in models:
            model["aliases"] = release["by_version"].get(model.get("version"), [])
            found = live.get(model.get("version"))
            model["live_score"] = found.as_dict() if found is not None else None
        body = {"models": models, "properties": properties}
        body.update(aliases=release["aliases"], traffic=release["traffic"])
        print(json.dumps(body, default=str, indent=2))
        return 0
    active = str(properties.get("active-model", ""))
    if not models:
        print("No models stored yet.")
    else:
        print("Models:")
        for model in models:
            named = release["by_version"].get(model.get("version"), [])
            for line in _model_lines(model, active, named):
                print(line)
            if model.get("version") in live:
                print(_live_line(live[model.get("version")]))
    if release["traffic"]:
        print("Traffic:")
        for service, split in release["traffic"].items():
            shares = ", ".join(f"{name} {weight:g}" for name, weight in split.items())
            print(f"  {service}: {shares}")
    print("Properties:")
    for key, value in properties.items():
        print(f"  {key}: {_value(value)}")
    return 0


def list_main(argv: Sequence[str] | None = None) -> int:
    """``pf-list``: list the stored models and the properties of the model store."""
    return run_script(LIST_DOC, argv, _list, mode="fit", entries=STORE_ENTRIES, short_lived=True)
