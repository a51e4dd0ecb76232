"""Estimators for the scale-out tests (a module of its own: the light jobs need no sklearn)."""

from __future__ import annotations

import os
import time

from sklearn.linear_model import LogisticRegression


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
