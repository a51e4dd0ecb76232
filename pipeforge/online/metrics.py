"""Progressive-validation metrics of online models (kept where chantilly's clients import them).

The counters are shared with the live scores of predict services: they live in
:mod:`pipeforge.release.scores`, which this module re-exports.
"""

from __future__ import annotations

from ..release.scores import count, delta, merge, new_state, update, values

__all__ = ["new_state", "delta", "merge", "update", "values", "count"]
