"""Ops: the versioned units of work a pipeline's nodes run.

* :class:`Op` is the small base class for your own ops: implement
  ``execute(*inputs)`` and, if configuration matters, ``params()``.
* :class:`TrainableOp` adds modes (``fit``, ``predict``, ``fit_predict``),
  a training level and a state the op store keeps.
* :class:`EstimatorOp`, :class:`DataOp` and :class:`FunctionOp` wrap a
  scikit-learn estimator, a dataset loader and a plain callable.

Constructors only store their arguments; names, versions and callbacks are
worked out at first use.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PipeforgeError
from ..factory import resolve_dotted_name
from .versioning import Version, VersionType, version_from_fields

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..config import Config

__all__ = ["Op", "TrainableOp", "EstimatorOp", "DataOp", "FunctionOp", "OpError", "MODES"]

MODES = ("fit", "predict", "fit_predict")


class OpError(PipeforgeError):
    """An op cannot run as asked (for example: predicting before any training)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Op:
    """Base class of all ops.

    Subclasses implement :meth:`execute`. What goes into the version is
    :meth:`params` (by default nothing but the class); ``versioning`` maps a
    parameter name to ``"major"``, ``"minor"`` or ``"patch"`` and overrides
    :attr:`default_level` for that parameter.
    """

    default_level: str = "major"
    trainable: bool = False

    def __init__(
        self,
        *,
        name: str | None = None,
        callbacks: Sequence[Any] | None = None,
        versioning: Mapping[str, str] | None = None,
    ):
        self.name = name
        self.callbacks = callbacks
        self.versioning = versioning

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """Copy the op's state, but share its callbacks (they may hold locks or files)."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = value if key == "callbacks" else copy.deepcopy(value, memo)
        return new

    # -- identity and version -------------------------------------------------
    @property
    def op_name(self) -> str:
        """The name the op store knows this op by."""
        return self.name or self.default_name()

    def default_name(self) -> str:
        return _snake(type(self).__name__)

    def params(self) -> dict[str, Any]:
        """The configuration that makes up the version (override in subclasses)."""
        return {}

    def version_fields(self) -> dict[str, tuple[Any, str]]:
        """``{name: (value, level)}`` for every versioned parameter."""
        overrides = dict(self.versioning or {})
        fields: dict[str, tuple[Any, str]] = {"__op_class__": (type(self), "major")}
        for key, value in self.params().items():
            fields[key] = (value, overrides.pop(key, self.default_level))
        if overrides:
            raise ConfigError(
                f"parameter 'versioning' of op {self.op_name!r} names unknown parameters "
                f"{sorted(overrides)}; known: {sorted(self.params())}"
            )
        return fields

    @property
    def config_version(self) -> Version:
        """The version given by the configuration alone (cached)."""
        cached = self.__dict__.get("_config_version")
        if cached is None:
            try:
                cached = version_from_fields(self.version_fields())
            except ValueError as exc:
                raise ConfigError(f"op {self.op_name!r}: {exc}") from exc
            self.__dict__["_config_version"] = cached
        return cached

    @property
    def version(self) -> Version:
        """The current version: configuration plus training, or as loaded."""
        return self.__dict__.get("_version") or self.config_version

    # -- running --------------------------------------------------------------
    def execute(self, *inputs: Any) -> Any:
        """Compute the op's output from its inputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(*inputs)")

    def run(self, mode: str | None, inputs: Sequence[Any]) -> Any:
        """Run in ``mode`` (ignored by ops that do not train)."""
        return self.execute(*inputs)

    def invoke(self, mode: str | None, inputs: Sequence[Any], callbacks: Sequence[Any] = ()) -> Any:
        """Run with the op's callbacks (``callbacks`` are the resolved ones)."""
        for callback in callbacks:
            callback.before_op(self, inputs)
        output = self.run(mode, inputs)
        for callback in callbacks:
            callback.after_op(self, inputs, output)
        return output

    # -- state ----------------------------------------------------------------
    def get_state(self) -> Any:
        """What the op store keeps for this op (``None``: nothing)."""
        return None

    def set_state(self, state: Any, version: Version) -> None:
        """Take back a stored state, which has ``version``."""
        self.__dict__["_version"] = version

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.op_name!r} {self.version}>"


class TrainableOp(Op):
    """An op that learns: ``fit`` changes its version at :attr:`training_level`.

    Subclasses implement :meth:`fit`, :meth:`predict`, :meth:`get_state`
    and :meth:`set_state` (call ``super().set_state`` to keep the version).
    """

    trainable = True

    def __init__(self, *, mode: str = "predict", training_level: str = "major", **kw: Any):
        super().__init__(**kw)
        self.mode = mode
        self.training_level = training_level

    @property
    def is_fitted(self) -> bool:
        return bool(self.__dict__.get("_fitted"))

    def check_mode(self, mode: str | None) -> str:
        mode = mode or self.mode
        if mode not in MODES:
            raise ConfigError(
                f"mode of op {self.op_name!r} must be one of {', '.join(MODES)}; got {mode!r} instead"
            )
        return mode

    def fit(self, *inputs: Any) -> None:
        raise NotImplementedError

    def predict(self, *inputs: Any) -> Any:
        raise NotImplementedError

    def fit_predict(self, *inputs: Any) -> Any:
        self.fit(*inputs)
        return self.predict(inputs[0])

    def run(self, mode: str | None, inputs: Sequence[Any]) -> Any:
        mode = self.check_mode(mode)
        if mode == "predict":
            if not self.is_fitted:
                raise OpError(
                    f"op {self.op_name!r} has not been trained: run a pipeline that fits it, "
                    "save it, and load this pipeline"
                )
            return self.predict(*inputs)
        output = None
        if mode == "fit":
            self.fit(*inputs)
        else:
            output = self.fit_predict(*inputs)
        self._trained()
        return output

    def _trained(self) -> None:
        level = VersionType.parse(self.training_level, what=f"training_level of {self.op_name!r}")
        self.__dict__["_version"] = self.version.bump(level, uuid.uuid4().hex)
        self.__dict__["_fitted"] = True

    def set_state(self, state: Any, version: Version) -> None:
        super().set_state(state, version)
        self.__dict__["_fitted"] = True


class EstimatorOp(TrainableOp):
    """A scikit-learn estimator (or anything with its interface) as an op.

    ``fit`` takes ``X`` or ``X, y``; ``predict`` uses ``method`` (default:
    ``predict``, else ``transform``); ``fit_predict`` is ``fit_transform``
    for transformers. The estimator's class and parameters count as major
    unless ``versioning`` says otherwise; training bumps ``training_level``.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        mode: str = "predict",
        method: str | None = None,
        training_level: str = "major",
        name: str | None = None,
        callbacks: Sequence[Any] | None = None,
        versioning: Mapping[str, str] | None = None,
    ):
        super().__init__(
            mode=mode,
            training_level=training_level,
            name=name,
            callbacks=callbacks,
            versioning=versioning,
        )
        self.estimator = estimator
        self.method = method

    def _estimator(self) -> Any:
        if self.estimator is None or not hasattr(self.estimator, "fit"):
            raise ConfigError(
                f"parameter 'estimator' of EstimatorOp {self.name or ''!r} must be an object "
                f"with fit(); got {self.estimator!r} instead"
            )
        return self.estimator

    def default_name(self) -> str:
        return _snake(type(self._estimator()).__name__)

    def params(self) -> dict[str, Any]:
        estimator = self._estimator()
        params: dict[str, Any] = {"estimator": type(estimator)}
        get_params = getattr(estimator, "get_params", None)
        if callable(get_params):
            params.update(get_params(deep=False))
        if self.method:
            params["method"] = self.method
        return params

    def fit(self, *inputs: Any) -> None:
        self._estimator().fit(*inputs)

    def predict(self, *inputs: Any) -> Any:
        estimator = self._estimator()
        method = self.method or ("predict" if hasattr(estimator, "predict") else "transform")
        return getattr(estimator, method)(*inputs)

    def fit_predict(self, *inputs: Any) -> Any:
        estimator = self._estimator()
        if self.method is None and hasattr(estimator, "fit_transform"):
            return estimator.fit_transform(*inputs)
        if self.method is None and hasattr(estimator, "fit_predict"):
            return estimator.fit_predict(*inputs)
        estimator.fit(*inputs)
        return self.predict(inputs[0])

    def get_state(self) -> Any:
        return self.estimator

    def set_state(self, state: Any, version: Version) -> None:
        self.estimator = state
        super().set_state(state, version)


class DataOp(Op):
    """A dataset loader (``loader() -> (X, y)``) as an op with no inputs.

    ``returns`` picks ``"Xy"`` (two outputs, the default), ``"X"`` or ``"y"``.
    """

    def __init__(
        self,
        loader: Callable[[], tuple[Any, Any]] | None = None,
        *,
        returns: str = "Xy",
        name: str | None = None,
        callbacks: Sequence[Any] | None = None,
        versioning: Mapping[str, str] | None = None,
    ):
        super().__init__(name=name, callbacks=callbacks, versioning=versioning)
        self.loader = loader
        self.returns = returns

    def default_name(self) -> str:
        return _snake(type(self.loader).__name__) if self.loader is not None else "data"

    def initialize_component(self, config: Config) -> None:
        """Pass the config on to the loader (it finds relative paths with it)."""
        initialize = getattr(self.loader, "initialize_component", None)
        if callable(initialize):
            initialize(config)

    def params(self) -> dict[str, Any]:
        return {"loader": self.loader, "returns": self.returns}

    def execute(self) -> Any:
        if not callable(self.loader):
            raise ConfigError(
                f"parameter 'loader' of DataOp {self.op_name!r} must be a dataset loader "
                f"(callable returning (X, y)); got {self.loader!r} instead"
            )
        if self.returns not in ("Xy", "X", "y"):
            raise ConfigError(
                f"parameter 'returns' of DataOp {self.op_name!r} must be 'Xy', 'X' or 'y'; "
                f"got {self.returns!r} instead"
            )
        X, y = self.loader()
        return {"Xy": (X, y), "X": X, "y": y}[self.returns]


class FunctionOp(Op):
    """A plain Python callable (or its dotted name) as an op.

    ``kwargs`` are passed on every call and count towards the version.
    """

    def __init__(
        self,
        function: Callable[..., Any] | str | None = None,
        *,
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        callbacks: Sequence[Any] | None = None,
        versioning: Mapping[str, str] | None = None,
    ):
        super().__init__(name=name, callbacks=callbacks, versioning=versioning)
        self.function = function
        self.kwargs = kwargs

    def _function(self) -> Callable[..., Any]:
        function = self.function
        if isinstance(function, str):
            function = resolve_dotted_name(function)
        if not callable(function):
            raise ConfigError(
                f"parameter 'function' of FunctionOp {self.name or ''!r} must be a callable "
                f"or its dotted name; got {self.function!r} instead"
            )
        return function

    def default_name(self) -> str:
        return getattr(self._function(), "__name__", "function")

    def params(self) -> dict[str, Any]:
        return {"function": self._function(), **dict(self.kwargs or {})}

    def execute(self, *inputs: Any) -> Any:
        return self._function()(*inputs, **dict(self.kwargs or {}))
