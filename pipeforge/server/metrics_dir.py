"""The directory prometheus-client's multiprocess mode shares between server workers.

:func:`prepare_multiprocess` (called by ``pipeforge.wsgi``, and by
``pf-serve`` before it loads the app, before anything imports
prometheus_client) picks one directory per server master in the system's
temp folder, named after the master's pid and start time, so that every
worker of one server finds the same one: gunicorn's workers, with or without
``--preload``, granian's (which run the app in processes the master starts
with :mod:`multiprocessing`), and the workers ``pf-serve`` forks from the
process that loaded the app (it names itself the master). Directories of
masters that are gone are removed when the next server starts; a worker that
exits drops its live gauges. A ``PROMETHEUS_MULTIPROC_DIR`` set by the user
is used as it is.
"""

from __future__ import annotations

import atexit
import functools
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


def _server_master() -> int | None:
    """The pid of the gunicorn or granian master this process belongs to, or ``None``."""
    if "granian" in sys.modules:
        import multiprocessing

        if multiprocessing.current_process().name == "granian-worker":
            return os.getppid()  # granian starts its workers as multiprocessing children
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


def prepare_multiprocess(master: int | None = None) -> str | None:
    """Point prometheus_client at the directory shared by this server's workers.

    Must run before prometheus_client is imported. ``master`` is the pid of
    the process whose workers share the directory (``pf-serve`` passes its
    own before it forks them); by default the gunicorn or granian master
    this process belongs to. Returns the directory, or ``None`` when this
    process keeps its metrics in memory (no such server, or prometheus_client
    was imported too early).
    """
    own = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if own:
        return own
    if master is None:
        master = _server_master()
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
    _on_exit(str(path), master)
    if os.getpid() == master:  # workers forked from here say goodbye on their own exit
        os.register_at_fork(after_in_child=functools.partial(_on_exit, str(path), master))
    return str(path)


def _on_exit(path: str, master: int) -> None:
    """Have this process clean up after itself when it exits.

    gunicorn's workers leave through ``sys.exit`` (``atexit`` runs); the
    children of :mod:`multiprocessing` (granian's workers) leave through
    ``os._exit`` after running its finalizers, so both are asked.
    """
    from multiprocessing import util

    atexit.register(_process_exit, path, master, os.getpid())
    util.Finalize(None, _process_exit, args=(path, master, os.getpid()), exitpriority=0)


def _process_exit(path: str, master: int, pid: int) -> None:
    if os.getpid() != pid:  # registered by the process this one was forked from
        return
    if pid == master:  # the master leaves last
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)
    except Exception:  # the directory may be gone already
        logger.debug("could not drop this worker's live gauges", exc_info=True)
