"""``pf-admin alias``, ``tag``, ``traffic`` and ``promote``: releasing stored versions.

``pf-admin`` (:mod:`.models`) hands these subcommands here. Each changes
the model store only (one property or one version's metadata); servers
follow within one refresh of their model cache (docs/releasing.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ..release.routing import split_problem
from .run import STORE_ENTRIES, existing_store, number_option, positive_int_option, run_script

__all__ = ["RELEASE_COMMANDS", "release_admin_main"]

#: the pf-admin subcommands this module runs
RELEASE_COMMANDS = ("alias", "tag", "traffic", "promote")

RELEASE_DOC = """Move aliases, tag versions, split traffic, promote (docs/releasing.md).

Uses 'model_persister' from the configuration; traffic and promote also
read the predict services (entries named predict_service...).

Usage:
  pf-admin alias <name> <version> [options]
  pf-admin alias --delete <name> [options]
  pf-admin tag <version> <tag>... [options]
  pf-admin tag --delete <version> <tag>... [options]
  pf-admin traffic <service> <weight>... [options]
  pf-admin traffic --reset <service> [options]
  pf-admin promote <alias> [--to=<alias>] [--min-feedback=<n>] [--margin=<x>] [options]

Arguments:
  <version>     A version number, or an alias naming one.
  <tag>         key=value to set a tag; with --delete, the keys to remove.
  <service>     A predict service's entry point (/predict) or config key.
  <weight>      alias=weight, e.g. champion=90 challenger=10.

Options:
  --delete              Remove the alias, or the tags.
  --reset               Forget the stored split: the config's applies again.
  --to=<alias>          The alias promote moves [default: champion].
  --min-feedback=<n>    Promote only when both versions have live scores over
                        at least n feedbacks.
  --margin=<x>          Promote only when the promoted version's live score is
                        better by at least x.
  --service=<service>   Take the live scores of this service only.
  --json                Print the outcome as JSON.
  --debug               Show tracebacks of errors.
  -h --help             Show this screen.
"""


def _say(args: Mapping[str, Any], text: str, body: dict[str, Any]) -> None:
    print(json.dumps(body, default=str, indent=2) if args["--json"] else text)


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{what} must be written name=value; got {item!r}")
        found[name] = value
    return found


def _services(config: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """``{entry point: (key, service)}`` of the config's ``predict_service*`` entries."""
    found = {}
    for key in list(config):
        if isinstance(key, str) and key.startswith("predict_service"):
            service = config[key]
            found[getattr(service, "entry_point", "/predict")] = (key, service)
    return found


def _traffic(args: Mapping[str, Any], config: Mapping[str, Any], persister: Any) -> int:
    from ..release.aliases import set_traffic

    services = _services(config)
    named = args["<service>"]
    by_key = {key: point for point, (key, _) in services.items()}
    entry_point = by_key.get(named, named)
    if entry_point not in services:
        known = ", ".join(sorted(services)) or "none"
        raise UsageError(f"no predict service {named!r} in the config (services: {known})")
    key, service = services[entry_point]
    problem = split_problem(key, service, entry_point)
    if problem is not None:
        raise UsageError(problem)
    if args["--reset"]:
        set_traffic(persister, entry_point, None)
        _say(args, f"{entry_point}: back to the config's split {dict(service.traffic)}", {})
        return 0
    weights = {}
    for name, text in _pairs(args["<weight>"], "a weight").items():
        weight = number_option(text, name)
        assert weight is not None
        weights[name] = weight
    split = set_traffic(persister, entry_point, weights)
    shares = ", ".join(f"{name} {weight:g}" for name, weight in (split or {}).items())
    _say(args, f"{entry_point}: traffic {shares}", {"service": entry_point, "traffic": split})
    return 0


def _promote(args: Mapping[str, Any], config: Mapping[str, Any], persister: Any) -> int:
    from ..release.promotion import PromotionRefused, evidence, promote

    least = positive_int_option(args["--min-feedback"], "--min-feedback")
    margin = number_option(args["--margin"], "--margin")
    _services(config)  # built, so that their prediction logs can be read
    scores = evidence(config, persister, service=args["--service"])
    try:
        decision = promote(
            persister,
            args["<alias>"],
            args["--to"],
            scores=scores,
            min_feedback=least,
            margin=margin,
        )
    except PromotionRefused as exc:
        _say(args, "\n".join(exc.decision.lines()), exc.decision.as_dict())
        return 1
    _say(args, "\n".join(decision.lines()), decision.as_dict())
    return 0


def _release(args: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    from ..release import aliases as release

    persister = existing_store(config)
    if args["alias"]:
        name = args["<name>"]
        if args["--delete"]:
            version = release.delete_alias(persister, name)
            _say(args, f"Removed alias {name} (it named version {version})", {"alias": name})
        else:
            version = release.set_alias(persister, name, args["<version>"])
            _say(args, f"Alias {name} -> version {version}", {"alias": name, "version": version})
        return 0
    if args["tag"]:
        if args["--delete"]:
            changes: dict[str, str | None] = dict.fromkeys(args["<tag>"])
        else:
            changes = dict(_pairs(args["<tag>"], "a tag"))
        tags = release.set_tags(persister, args["<version>"], changes)
        shown = ", ".join(f"{k}={v}" for k, v in tags.items()) or "none"
        _say(args, f"Tags of version {args['<version>']}: {shown}", {"tags": tags})
        return 0
    if args["traffic"]:
        return _traffic(args, config, persister)
    return _promote(args, config, persister)


def release_admin_main(argv: Sequence[str] | None = None) -> int:
    """``pf-admin alias|tag|traffic|promote ...``."""
    return run_script(
        RELEASE_DOC, argv, _release, mode="fit", entries=STORE_ENTRIES, short_lived=True
    )
