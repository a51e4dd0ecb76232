"""``pf-pipeline``: list, run, load and inspect the config's versioned pipelines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError

__all__ = ["main"]

DOC = """Run, save, load and inspect the versioned pipelines of the configuration.

Uses the 'ops', 'pipelines' and 'op_store' entries of the configuration
named by PIPEFORGE_CONFIG (see docs/pipelines.md).

Usage:
  pf-pipeline list [--debug]
  pf-pipeline run <name> [--input=<json>] [--save] [--debug]
  pf-pipeline load <name> [--debug]
  pf-pipeline versions <name> [--debug]
  pf-pipeline show <name> [--svg=<file>] [--json] [--debug]
  pf-pipeline -h | --help

Commands:
  list        Print the pipelines' names, one per line.
  run         Load the pipeline's newest linked op versions, run it, and print
              {"pipeline_output": ..., "versions": ...} as JSON.
  load        Load the pipeline's newest linked op versions, record them in the
              op store so every server switches to them within its refresh
              interval (docs/scaling-out.md), and print them; exit status 1
              with the op to retrain when it cannot be loaded.
  versions    Print every stored version of each op of the pipeline, newest
              first, with the upstream versions it was trained on.
  show        Describe the pipeline as a server loading it would run it: each
              node's op, mode, inputs and outputs, the op version loaded and
              the current one in the op store, what it was trained on;
              with --svg also the DAG as a picture (a standalone SVG file).

Options:
  --input=<json>   The pipeline input, as JSON (default: null).
  --save           Save what the run trained (op states, versions, links).
  --svg=<file>     Write the pipeline's DAG to this SVG file.
  --json           Print the description as JSON.
  --debug          Show tracebacks of errors.
  -h --help        Show this screen.
"""


def _pipeline(config, name: str):
    from ..pipelines.build import build_pipelines

    pipelines = build_pipelines(config)
    if name not in pipelines:
        known = ", ".join(sorted(pipelines)) or "none"
        raise UsageError(f"unknown pipeline {name!r} (pipelines in the config: {known})")
    return pipelines[name]


def _dumps(value: Any) -> str:
    from ..pipelines.http import to_jsonable

    return json.dumps(to_jsonable(value), indent=2)


def _body(args, config) -> int:
    from ..pipelines.build import build_op_store, build_pipelines

    if args["list"]:
        for name in build_pipelines(config):
            print(name)
        return 0
    pipeline = _pipeline(config, args["<name>"])
    store = build_op_store(config)
    try:
        return _command(args, pipeline, store)
    finally:
        store.dispose()


def _command(args, pipeline, store) -> int:
    if args["show"]:
        return _show(args, pipeline, store)
    if args["versions"]:
        print(_dumps({op: store.list_versions(op) for op in pipeline.op_names()}))
        return 0
    if args["load"]:
        from ..pipelines.sync import record_load

        pipeline.load(store)
        record_load(store, pipeline)
        print(
            _dumps({"pipeline": pipeline.name, "is_loaded": True, "versions": pipeline.versions()})
        )
        return 0
    pipeline.load(store)
    raw = args["--input"]
    try:
        pipeline_input = None if raw is None else json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"--input must be JSON; got {raw!r} ({exc})") from exc
    output = pipeline.run(pipeline_input)
    result: dict[str, Any] = {"pipeline_output": output, "versions": pipeline.versions()}
    if args["--save"]:
        result["saved"] = pipeline.save(store)
    print(_dumps(result))
    return 0


def _show(args, pipeline, store) -> int:
    from ..errors import VersionError
    from ..pipelines.describe import describe, short_version

    load_error = None
    try:
        pipeline.load(store)
    except VersionError as exc:
        load_error = str(exc)
    description = describe(pipeline, store, load_error=load_error)
    if args["--svg"]:
        from ..pipelines.svg import render_svg

        with open(args["--svg"], "w", encoding="utf-8") as handle:
            handle.write(render_svg(description))
    if args["--json"]:
        print(_dumps(description))
    else:
        state = "loaded" if description["is_loaded"] else f"not loaded: {load_error}"
        print(f"pipeline {pipeline.name} ({state})")
        for node in description["nodes"]:
            mode = f", mode {node['mode']}" if node["trainable"] else ""
            print(f"  {node['name']}: {node['kind']} {node['runs']}{mode}")
            inputs = ", ".join(node["inputs"]) or "-"
            print(f"    inputs {inputs} -> outputs {', '.join(node['outputs']) or '-'}")
            if node["version"]:
                note = ""
                if node["trainable"]:
                    note = {True: " (current)", None: " (not trained and saved yet)"}.get(
                        node["is_current"], f" (current: {short_version(node['current'])})"
                    )
                print(f"    version {short_version(node['version'])}{note}")
            for up, version in sorted(node["trained_on"].items()):
                print(f"    trained on {up} {short_version(version)}")
    if args["--svg"]:
        print(f"Wrote the picture of {pipeline.name} to {args['--svg']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pf-pipeline``; returns the exit status."""
    from .run import run_script

    return run_script(DOC, argv, _body, mode="fit")
