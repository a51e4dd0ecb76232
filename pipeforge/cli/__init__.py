"""The command-line scripts (``pf-*``) and the one place that runs them.

The rooms: ``run`` is the boundary every script goes through (arguments,
config, errors to exit codes); the other modules are the families of
commands (docs/architecture.md).
"""

from .run import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, positive_int_option, run_script

__all__ = ["run_script", "positive_int_option", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE"]
