"""The ``pf-*`` model scripts by their 0.1 names: ``pipeforge.scripts.fit_main`` and the rest.

Each family lives in a module of its own (:mod:`~pipeforge.cli.models`,
:mod:`~pipeforge.cli.listing`, :mod:`~pipeforge.cli.stream`); this module
keeps the names that console scripts, docs and user code written for
earlier versions import. Each ``*_main(argv=None)`` returns its exit status.
"""

from __future__ import annotations

from .listing import list_main
from .models import (
    admin_main,
    export_main,
    fit_main,
    grid_search_main,
    test_main,
    upgrade_main,
    version_main,
)
from .stream import stream_main

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
