"""The interfaces pipeforge's components implement.

A component is anything a config entry builds with ``__factory__``. Only
the methods below are relied on, so a user's own class needs nothing from
pipeforge but these names; subclassing is a convenience.

Two optional hooks tie a component to the running program:

* ``initialize_component(config)`` is called once the whole config is
  built (as in Palladium), so a component can look up its siblings and the
  config's process store. It must not start threads or open connections.
* :class:`Background` components do periodic work (model-cache refresh,
  scheduled data loads). The server and scripts call ``start()`` when they
  start and ``stop()`` when they end; parsing a config never does.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from .errors import PredictError

if TYPE_CHECKING:
    from flask import Request, Response
    from typing_extensions import Self

__all__ = [
    "DatasetLoader",
    "Model",
    "ModelPersister",
    "PredictService",
    "Background",
    "PredictError",
    "annotate",
]


class DatasetLoader(abc.ABC):
    """Loads a dataset for training or evaluation."""

    @abc.abstractmethod
    def __call__(self) -> tuple[Any, Any]:
        """Return ``(X, y)``; ``y`` may be ``None`` for unsupervised data."""


class Model(abc.ABC):
    """A scikit-learn style estimator; any sklearn estimator qualifies."""

    @abc.abstractmethod
    def fit(self, X: Any, y: Any = None) -> Self:
        """Fit to ``X`` (and ``y``) and return ``self``."""

    @abc.abstractmethod
    def predict(self, X: Any, **kw: Any) -> Any:
        """Return one prediction per row of ``X``; may raise :class:`PredictError`."""

    def predict_proba(self, X: Any, **kw: Any) -> Any:
        """Return class probabilities, one row per sample."""
        raise NotImplementedError


class ModelPersister(abc.ABC):
    """Stores fitted models under integer versions 1, 2, ... that are never reused."""

    @abc.abstractmethod
    def read(self, version: int | None = None) -> Any:
        """Return the model with ``version``, or the active one when ``None``.

        Raises :class:`~pipeforge.errors.UnknownVersionError` or
        :class:`~pipeforge.errors.NoModelError` (both ``LookupError``).
        """

    @abc.abstractmethod
    def write(self, model: Any) -> int:
        """Store ``model`` (inactive) and return its new version.

        The version and ``train_timestamp`` are annotated onto the model
        before it is stored. A failed write leaves no version behind.
        """

    @abc.abstractmethod
    def activate(self, version: int) -> None:
        """Make ``version`` the model :meth:`read` returns by default."""

    @abc.abstractmethod
    def delete(self, version: int) -> None:
        """Delete the model ``version`` and everything stored for it."""

    @abc.abstractmethod
    def list_models(self) -> list[dict]:
        """Metadata of every stored model, oldest first; each has ``version``."""

    @abc.abstractmethod
    def list_properties(self) -> dict[str, str]:
        """Properties of the store, such as ``active-model`` and ``db-version``."""

    def upgrade(self, from_version: str | None = None, to_version: str | None = None) -> list[str]:
        """Bring the storage format up to date; return the steps that ran."""
        return []

    def update_metadata(self, version: int, changes: dict) -> dict:
        """Merge ``changes`` into the stored metadata of ``version``; return the result.

        Optional: used to record scores measured after the model was stored
        (``pf-test``). ``version`` itself cannot be changed.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot update stored metadata")


class PredictService(abc.ABC):
    """Turns a web request into predictions and a response (``/predict``)."""

    @abc.abstractmethod
    def __call__(self, model: Any, request: Request) -> Response:
        """Answer ``request`` using ``model``."""


class Background(abc.ABC):
    """A component with periodic work in a thread of its own."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the background work; calling it twice is harmless."""

    @abc.abstractmethod
    def stop(self, timeout: float | None = None) -> None:
        """Stop the background work and wait for its thread."""


def annotate(obj: Any, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Attach ``metadata`` to ``obj`` (merged into ``obj.__metadata__``) and return it all."""
    current = getattr(obj, "__metadata__", None)
    if current is None:
        current = {}
        try:
            obj.__metadata__ = current
        except AttributeError:  # objects without a __dict__ carry no metadata
            return dict(metadata or {})
    if metadata:
        current.update(metadata)
    return current
