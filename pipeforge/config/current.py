"""The program's configuration: one per process, for Palladium's ``get_config()``.

pipeforge itself passes its :class:`Config` around: ``create_app(config)``
builds the web service from it, and library functions take what they need
as arguments. Palladium's API, though, is a process-wide configuration that
any code can reach with ``get_config()`` (``palladium.util.get_config``,
``palladium.config.get_config``), and Palladium users' modules, configs and
``pld-*`` habits call it. So this module, and only this one, keeps the
configuration of the running program: :func:`initialize_config` builds it
from ``PIPEFORGE_CONFIG`` (the CLI's run boundary and ``wsgi.py`` call it),
:func:`get_config` hands it out, building it on first use. Besides the
Palladium compatibility layer, only the RQ worker's task entry point reads
it (``jobs.worker.run_task``: an RQ job names a function, so the worker
process loads its configuration once and hands it to every job).

The configuration's ``logging`` entry configures the process's logging
(:func:`apply_logging`), which is process-wide too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .files import config_paths_from_env
from .loading import load_config
from .mapping import Config

__all__ = ["get_config", "initialize_config", "apply_logging"]

_current: Config | None = None


def get_config(*, lazy: bool = False, **extra: Any) -> Config:
    """The program's configuration, built once from ``PIPEFORGE_CONFIG``."""
    global _current
    if _current is None:
        _current = load_config(config_paths_from_env(), lazy=lazy, **extra)
    return _current


def initialize_config(*, lazy: bool = False, **extra: Any) -> Config:
    """(Re)build the program's configuration and apply its ``logging`` entry.

    ``lazy`` builds each entry on first use (see :func:`load_config`).
    """
    global _current
    config = load_config(config_paths_from_env(), lazy=lazy, **extra)
    apply_logging(config)
    _current = config
    return config


def apply_logging(config: Mapping[str, Any]) -> None:
    """Configure logging with the config's ``logging`` entry (a ``dictConfig`` dict), if any."""
    if "logging" not in config:
        return
    import logging.config  # only here: the scripts that need no logging entry start faster

    try:
        logging.config.dictConfig(config["logging"])
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigError(
            f"invalid logging configuration: {exc}",
            source=", ".join(getattr(config, "sources", ())) or None,
            key="logging",
        ) from exc
