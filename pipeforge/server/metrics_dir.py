"""The directory prometheus-client's multiprocess mode shares between gunicorn workers.

:func:`prepare_multiprocess` (called by ``pipeforge.wsgi`` before anything
imports prometheus_client) picks one directory per gunicorn master in the
system's temp folder, named after the master's pid and start time, so that
every worker of one server — with or without ``--preload`` — finds the same
one. Directories of masters that are gone are removed when the next server
starts; a worker that exits drops its live gauges. A
``PROMETHEUS_MULTIPROC_DIR`` set by the user is used as it is.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

__all__ = ["prepare_multiprocess"]

logger = logging.getLogger(__name__)

_DIR_PREFIX = "pipeforge-metrics-"
_DIR_NAME = re.compile(re.escape(_DIR_PREFIX) + r"(\d+)-(\d+)$")


def _gunicorn_master() -> int | None:
    """The pid of the gunicorn master this process belongs to, or ``None``."""
    if "gunicorn" not in sys.modules:
        return None
    owner = getattr(signal.getsignal(signal.SIGQUIT), "__self__", None)
    ppid = getattr(owner, "ppid", None)
    if type(owner).__module__.startswith("gunicorn.workers") and isinstance(ppid, int):
        return ppid  # a worker: its master is the parent
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        return os.getpid()  # --preload: the app is loaded in the master itself
    return None


def _started(pid: int) -> int | None:
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _prune(base: Path) -> None:
    """Remove the directories of gunicorn masters that are gone."""
    for path in base.glob(_DIR_PREFIX + "*"):
        match = _DIR_NAME.match(path.name)
        if match and _started(int(match.group(1))) != int(match.group(2)):
            shutil.rmtree(path, ignore_errors=True)


def prepare_multiprocess() -> str | None:
    """Point prometheus_client at the directory shared by this gunicorn's workers.

    Must run before prometheus_client is imported. Returns the directory, or
    ``None`` when this process keeps its metrics in memory (not under
    gunicorn, or prometheus_client was imported too early).
    """
    own = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if own:
        return own
    master = _gunicorn_master()
    if master is None:
        return None
    if "prometheus_client" in sys.modules:
        logger.warning(
            "prometheus_client was imported before pipeforge could set up its multiprocess "
            "directory: /metrics counts only the worker that answers; export "
            "PROMETHEUS_MULTIPROC_DIR to fix it"
        )
        return None
    started = _started(master)
    base = Path(tempfile.gettempdir())
    path = base / f"{_DIR_PREFIX}{master}-{started}"
    path.mkdir(mode=0o700, exist_ok=True)
    _prune(base)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    atexit.register(_process_exit, str(path), master)
    return str(path)


def _process_exit(path: str, master: int) -> None:
    if os.getpid() == master:  # --preload: the master leaves last
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)
    except Exception:  # the directory may be gone already
        logger.debug("could not drop this worker's live gauges", exc_info=True)
