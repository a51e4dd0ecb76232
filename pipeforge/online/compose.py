"""Building River pipelines in a config file, where only keyword arguments exist.

River's ``compose.Pipeline(*steps)`` takes its steps positionally, which a
``__factory__`` entry cannot express; :func:`pipeline` takes them as a list::

    model:
      __factory__: pipeforge.online.pipeline
      steps:
        - {__factory__: river.preprocessing.StandardScaler}
        - {__factory__: river.linear_model.LinearRegression}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from river.compose import Pipeline

__all__ = ["pipeline"]


def pipeline(steps: Sequence[Any]) -> Pipeline:
    """``river.compose.Pipeline(*steps)``."""
    from river import compose

    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise ValueError(
            f"'steps' of pipeforge.online.pipeline must be a list of River steps; got {steps!r}"
        )
    return compose.Pipeline(*steps)
