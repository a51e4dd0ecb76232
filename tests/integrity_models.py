"""Models for tests/test_model_integrity.py whose loading leaves a trace on disk.

``MarkedLogisticRegression`` writes the file ``PIPEFORGE_TEST_MARKER`` names
whenever it is rebuilt from storage (skops calls ``__setstate__``, as pickle
does), so a test can tell whether a refused model was built after all.
``payload(path)`` is a pickle that creates ``path`` when it is unpickled: what
someone who can write the store could put there.
"""

from __future__ import annotations

import os
import pickle

from sklearn.linear_model import LogisticRegression


class MarkedLogisticRegression(LogisticRegression):
    def __setstate__(self, state):
        marker = os.environ.get("PIPEFORGE_TEST_MARKER")
        if marker:
            with open(marker, "a") as handle:
                handle.write("built\n")
        super().__setstate__(state)


class _Payload:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def payload(path: str) -> bytes:
    """A pickle that creates ``path`` when loaded."""
    return pickle.dumps(_Payload(path), protocol=5)
