"""Jobs and estimators the scale-out tests run on workers (importable by ``pf-worker``)."""

from __future__ import annotations

import os
import time

from sklearn.linear_model import LogisticRegression

from pipeforge.errors import DataError


def add(config, *, a, b):
    """A job's result comes back to whoever reads the job."""
    return {"sum": a + b, "marker": config.get("marker")}


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


class SlowClassifier(LogisticRegression):
    """A classifier whose fit takes ``seconds``; writes its process id to ``pid_file`` first."""

    def __init__(self, seconds=60.0, pid_file=None, C=1.0, max_iter=1000):
        super().__init__(C=C, max_iter=max_iter)
        self.seconds = seconds
        self.pid_file = pid_file

    def fit(self, X, y):
        if self.pid_file:
            with open(self.pid_file, "w") as out:
                out.write(str(os.getpid()))
        time.sleep(self.seconds)
        return super().fit(X, y)
