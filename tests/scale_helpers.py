"""Jobs and estimators the scale-out tests run on workers (importable by ``pf-worker``)."""

from __future__ import annotations

import os
import time

from pipeforge.errors import DataError


def add(config, *, a, b):
    """A job's result comes back to whoever reads the job."""
    return {"sum": a + b, "marker": config.get("x-marker")}


def missing_data(config):
    raise DataError("cannot read 'nowhere.csv': no such file")


def bug(config):
    raise KeyError("internal detail")


def wait_for_file(config, *, path, timeout=30.0):
    """Runs until ``path`` exists, so a test sees the job running."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"
