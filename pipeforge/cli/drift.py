"""``pf-drift``: how far each served version's recent inputs have moved from its training data.

It reads the newest entries of every prediction log the config's predict
services keep and compares each version's inputs with the training summary
stored with it (:mod:`pipeforge.release.drift`), like ``/alive`` and
``/metrics`` do in the server.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from .run import STORE_ENTRIES, existing_store, number_option, positive_int_option, run_script

__all__ = ["drift_main"]

DRIFT_DOC = """Show the input drift of the served versions against their training data.

For each predict service that keeps a prediction log, the newest logged
requests are grouped by the version that answered them, and each input
feature is compared with the summary of that version's training data: its
population stability index (PSI: 0 is no change, above 0.25 a major shift)
and the share of inputs outside the training range. A feature is flagged
'*' above the threshold. Uses 'model_persister', the services'
'prediction_log' and the optional 'drift' entry of the configuration.

Usage:
  pf-drift [options]

Options:
  --window <n>        The newest logged requests of each service to compare
                      (default: the drift entry's window, else 1000).
  --threshold <psi>   The PSI above which a feature has drifted (default: the
                      drift entry's threshold, else 0.2).
  --min-rows <n>      Fewer logged samples of a version give no verdict
                      (default: the drift entry's min_rows, else 200).
  --check             Exit with status 1 when a version has drifted (for cron
                      jobs and CI).
  --json              Print the report as JSON: {"drifted", "threshold",
                      "max_outside", "versions": [{"service", "version",
                      "rows", "drifted", "score", "outside", "note",
                      "features": [{"name", "kind", "rows", "missing", "psi",
                      "outside", "drifted"}, ...]}, ...]}.
  --debug             Show tracebacks of errors.
  -h --help           Show this screen.
"""


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _share(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _print(report: dict) -> None:
    if not report["versions"]:
        print("No logged predictions to compare (is a service's prediction_log on?).")
        return
    print(
        f"threshold: PSI > {report['threshold']:g} or outside range > {_share(report['max_outside'])}"
    )
    for version in report["versions"]:
        head = f"{version['service']}  version {version['version']}  ({version['rows']} samples)"
        if version.get("note"):
            print(f"{head}  no verdict: {version['note']}")
            continue
        verdict = "DRIFTED" if version["drifted"] else "ok"
        print(f"{head}  {verdict}")
        width = max([7, *(len(str(f["name"])) for f in version["features"])])
        print(f"    {'feature':<{width}}  {'PSI':>8}  {'outside':>9}")
        for feature in version["features"]:
            mark = "*" if feature["drifted"] else " "
            print(
                f"  {mark} {str(feature['name']):<{width}}  {_number(feature['psi']):>8}"
                f"  {_share(feature['outside']):>9}"
            )


def _drift(args, config) -> int:
    from ..errors import UsageError
    from ..release.drift import DriftSettings, drift_report, read_settings, recent_rows

    persister = existing_store(config)
    settings = read_settings(config) or DriftSettings()
    changes: dict[str, Any] = {
        "window": positive_int_option(args["--window"], "--window"),
        "min_rows": positive_int_option(args["--min-rows"], "--min-rows"),
        "threshold": number_option(args["--threshold"], "--threshold"),
    }
    if changes["threshold"] is not None and not changes["threshold"] >= 0:
        raise UsageError(f"--threshold must be a number >= 0; got {args['--threshold']!r}")
    given = {key: value for key, value in changes.items() if value is not None}
    settings = dataclasses.replace(settings, **given)
    models = {m.get("version"): m for m in persister.list_models()}
    rows = recent_rows(config, settings.window, persister)
    report = drift_report(rows, models.get, settings)
    if args["--json"]:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 1 if args["--check"] and report["drifted"] else 0


def drift_main(argv: Sequence[str] | None = None) -> int:
    """``pf-drift``: the input drift of the served versions against their training data."""
    return run_script(DRIFT_DOC, argv, _drift, mode="fit", entries=STORE_ENTRIES, short_lived=True)
