"""An R script's function as a pipeforge component, and the dataset loader built on it.

Every R component names a function of an R script (``scriptname``,
``funcname``). The script runs once per process, in an environment of its
own, at the component's first use; a pickled component carries the
script's text, so it runs again (loading its libraries) in any process that
unpickles it, even where the script's file is not.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from ..config.files import path_base, resolve_path
from ..errors import ConfigError, DataError, PipeforgeError
from ..interfaces import DatasetLoader as _DatasetLoader
from .convert import to_python, to_r
from .session import r_runtime_error, r_session

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["RObject", "DatasetLoader"]

# Runs a script's text in an environment of its own; library() banners are not news.
_RUN_SCRIPT = (
    "function(code, env) suppressPackageStartupMessages("
    "eval(parse(text = code, keep.source = FALSE), envir = env))"
)


class RObject:
    """What every R component shares: ``funcname`` from the R script ``scriptname``.

    Extra keyword arguments are passed on to the R function. A relative
    ``scriptname`` resolves like every path of the config (see
    docs/configuration.md). The script runs once per process, in an
    environment of its own, at the component's first use.
    """

    def __init__(self, scriptname: str, funcname: str, **kwargs: Any) -> None:
        self.scriptname = scriptname
        self.funcname = funcname
        self.kwargs = kwargs
        self._base: str | None = None
        self._source: str | None = None
        self._env = None

    def initialize_component(self, config: Config) -> None:
        """Remember where a relative ``scriptname`` resolves."""
        self._base = path_base(config)

    def _script_text(self) -> str:
        if self._source is None:
            if not isinstance(self.scriptname, (str, os.PathLike)):
                raise ConfigError(
                    f"parameter 'scriptname' of {type(self).__name__} must be the path of an "
                    f"R script; got {self.scriptname!r} instead"
                )
            path = resolve_path(os.fspath(self.scriptname), self._base)
            try:
                with open(path, encoding="utf-8") as handle:
                    self._source = handle.read()
            except OSError as exc:
                raise ConfigError(
                    f"parameter 'scriptname' of {type(self).__name__}: cannot read the R script "
                    f"{path}: {exc.strerror or exc}"
                ) from None
        return self._source

    def _function(self, ro):
        """The R function ``funcname`` (runs the script first if this process has not)."""
        if self._env is None:
            env = ro.r["new.env"](parent=ro.globalenv)
            run = ro.r(_RUN_SCRIPT)
            try:
                run(self._script_text(), env)
            except r_runtime_error() as exc:
                raise PipeforgeError(
                    f"the R script {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            self._env = env
        try:
            return self._env.find(self.funcname)
        except LookupError:
            raise ConfigError(
                f"parameter 'funcname' of {type(self).__name__}: the R script "
                f"{self.scriptname} defines no function {self.funcname!r}"
            ) from None

    def _call(self, ro, *args):
        """Call the R function with ``args`` and the extra keyword arguments."""
        kwargs = {key: to_r(value) for key, value in self.kwargs.items()}
        return self._function(ro)(*args, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        with contextlib.suppress(ConfigError):  # an unreadable script fails at use, not here
            state["_source"] = self._script_text()
        state["_env"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scriptname={self.scriptname!r}, funcname={self.funcname!r})"


class DatasetLoader(RObject, _DatasetLoader):
    """Loads ``(X, y)`` by calling an R function that returns ``list(X, y)``."""

    def __call__(self) -> tuple[Any, Any]:
        with r_session() as ro:
            try:
                result = self._call(ro)
            except r_runtime_error() as exc:
                raise DataError(
                    f"R function {self.funcname!r} of {self.scriptname} failed: {str(exc).strip()}"
                ) from None
            if not isinstance(result, ro.vectors.ListVector) or len(result) != 2:
                raise DataError(
                    f"R function {self.funcname!r} of {self.scriptname} must return list(X, y)"
                )
            return to_python(result[0]), to_python(result[1])
