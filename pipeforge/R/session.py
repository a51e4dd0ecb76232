"""The one R interpreter of a process: started through rpy2 once, used under one lock.

R is single-threaded and there is one interpreter per process, so every
call into it holds :data:`LOCK` (:func:`r_session`). Starting R is done
once, at first use (not at import), and takes care of two things the
process must not inherit from it: R's console (routed to the log, since
``pf-stream`` answers on stdout) and R's library folders on
``LD_LIBRARY_PATH`` (which would break the programs this process starts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["LOCK", "start_r", "r_session", "r_runtime_error"]

logger = logging.getLogger(__name__)

#: held by every call into R
LOCK = threading.RLock()
_READY: list = []


def start_r() -> Any:
    """``rpy2.robjects``, with R started and its console routed to the log (once)."""
    # Starting R puts R's library folders (and the system's) on LD_LIBRARY_PATH in
    # os.environ. This process has loaded what R needs by then; the programs it starts
    # later (gunicorn, pip, a worker) must not inherit the change: another libpython
    # found there breaks a Python that is not the system's.
    saved = os.environ.get("LD_LIBRARY_PATH")
    try:
        with warnings.catch_warnings():
            # R started outside the main thread (a server's model-cache thread) cannot take
            # over Ctrl-C; the server's own signal handling is what counts there.
            warnings.filterwarnings("ignore", "R is not initialized by the main thread")
            import rpy2.robjects as ro
        from rpy2.rinterface_lib import callbacks
    except ImportError as exc:
        raise ImportError(
            "R models need rpy2 and R: pip install 'pipeforge[r]' and install R "
            f"(Debian: apt-get install r-base-core) ({exc})"
        ) from exc
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
    if not _READY:
        # R's print() would otherwise write to stdout, where pf-stream answers.
        callbacks.consolewrite_print = lambda text: logger.info("R: %s", text.rstrip())
        callbacks.consolewrite_warnerror = lambda text: logger.warning("R: %s", text.rstrip())
        _READY.append(True)
    return ro


@contextlib.contextmanager
def r_session() -> Iterator[Any]:
    """Hold the R lock with rpy2's plain conversion rules (they are per thread); yields ``ro``."""
    with LOCK:
        ro = start_r()
        from rpy2.robjects.conversion import localconverter

        with localconverter(ro.default_converter):
            yield ro


def r_runtime_error() -> type[Exception]:
    """The exception rpy2 raises when R code fails (imported only once R is needed)."""
    from rpy2.rinterface_lib.embedded import RRuntimeError

    return RRuntimeError
