"""The command-line scripts (``pf-*``) and the one place that runs them.

The rooms: ``run`` is the boundary every script goes through (arguments,
config, errors to exit codes); the others are the families of commands:
``models`` (pf-fit, pf-test, pf-admin, pf-grid-search, pf-export,
pf-upgrade, pf-version), ``listing`` (pf-list), ``stream`` (pf-stream),
``queue`` (their ``--queue`` runs), ``worker`` (pf-worker), ``serve`` and
``dockerize`` with ``lockfile`` (pf-devserver, pf-dockerize), ``pipelines``
(pf-pipeline) and ``online`` (pf-online). ``scripts`` keeps the 0.1 names of
the model scripts (docs/architecture.md).
"""

from .run import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    model_version_option,
    number_option,
    positive_int_option,
    run_script,
)

__all__ = [
    "run_script",
    "positive_int_option",
    "model_version_option",
    "number_option",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
]
