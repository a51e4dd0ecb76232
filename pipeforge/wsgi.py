"""The WSGI entry point: ``gunicorn pipeforge.wsgi:app``.

The only module that reads the environment at import: it builds the config
named by ``PIPEFORGE_CONFIG`` (in ``predict`` mode) and the app, and starts
the background components (the model cache refresh) in this process. Under
gunicorn each worker imports it after forking, so each worker gets its own
threads; with ``--preload`` the app restarts them in every forked worker.
Under gunicorn (and granian: ``granian --interface wsgi pipeforge.wsgi:app``)
it also gives ``/metrics`` a directory shared by the workers
(:func:`pipeforge.metrics.prepare_multiprocess`). ``pf-serve`` builds the app
itself, once, before it forks the workers (:mod:`pipeforge.cli.fast_serve`).

A store that is down when a worker boots does not stop it: the worker
serves 503s on the routes that need the store until it is back (see
:mod:`pipeforge.server.lifecycle`).

A broken config is said in one line and stops the server: under gunicorn
the error becomes an ``AppImportError``, which gunicorn prints before the
master halts instead of respawning workers that cannot boot. Every worker
of a fresh server meets the same broken config at about the same moment,
so only the first of them says it (a marker file named after the master's
pid and start time decides which); the others wait quietly for the
master's stop, which the first one's exit brings.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from .errors import PipeforgeError

logger = logging.getLogger(__name__)

_APP_LOAD_ERROR = 4  # gunicorn's exit status for an app that cannot load
_QUIET_WAIT = 30.0  # seconds a silent worker waits for the master's stop before it speaks


def _load():
    from .config import initialize_config
    from .server import metrics
    from .server.app import create_app

    try:
        config = initialize_config(__mode__="predict")
        if metrics.settings(config) is not None:
            metrics.prepare_multiprocess()  # before prometheus_client is imported
        return create_app(config, start_background=True)
    except (PipeforgeError, ImportError, OSError) as exc:
        message = f"pipeforge cannot start the web service: {exc}"
        if "gunicorn" in sys.modules:
            from gunicorn.errors import AppImportError

            if _gunicorn_worker() is None and _in_gunicorn_master():
                print(message, file=sys.stderr)  # --preload: gunicorn would add a traceback
                raise SystemExit(_APP_LOAD_ERROR) from None
            _let_one_worker_say_it()
            raise AppImportError(message) from None  # gunicorn prints it and halts
        logger.critical(message)
        raise


def _gunicorn_worker() -> Any:
    """The gunicorn worker object of this process, or ``None`` (the master, or no gunicorn)."""
    owner = getattr(signal.getsignal(signal.SIGQUIT), "__self__", None)
    if type(owner).__module__.startswith("gunicorn.workers") and isinstance(
        getattr(owner, "ppid", None), int
    ):
        return owner
    return None


def _in_gunicorn_master() -> bool:
    """Whether this process is a gunicorn master loading the app itself (``--preload``)."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn")


def _let_one_worker_say_it() -> None:
    """Return in the first worker of a master that fails to load the app; keep the others quiet.

    A quiet worker waits for the master's stop (the first worker's exit with
    gunicorn's app-load error code halts it) and exits without a word, so
    the line is printed once and the master halts once. Should no stop come
    within ``_QUIET_WAIT`` seconds, it returns and says the line itself.
    """
    worker = _gunicorn_worker()
    if worker is None or _first_to_report(worker.ppid):
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the master's stop ends this worker at once
    deadline = time.monotonic() + _QUIET_WAIT
    while time.monotonic() < deadline:
        if not getattr(worker, "alive", True) or os.getppid() != worker.ppid:
            sys.exit(0)  # told to stop (or the master is gone): the first worker said it
        time.sleep(0.05)


def _first_to_report(master: int) -> bool:
    """Whether this worker is the first of ``master``'s to report that the app cannot load."""
    import tempfile

    started = _start_time(master)
    if started is None:
        return True
    folder = tempfile.gettempdir()
    prefix = f"pipeforge-load-error-{os.getuid()}-"
    path = os.path.join(folder, f"{prefix}{master}-{started}")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        try:
            return os.stat(path).st_uid != os.getuid()  # not ours: say it anyway
        except OSError:
            return True
    except OSError:
        return True
    _prune(folder, prefix)
    return True


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (ms since the epoch), or ``None`` if it cannot be told."""
    try:
        import psutil

        return int(psutil.Process(pid).create_time() * 1000)
    except Exception:
        return None


def _prune(folder: str, prefix: str) -> None:
    """Remove the markers of masters that are gone."""
    for name in os.listdir(folder):
        if not name.startswith(prefix):
            continue
        pid, _, started = name[len(prefix) :].partition("-")
        if pid.isdigit() and started.isdigit() and _start_time(int(pid)) != int(started):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


app = _load()
