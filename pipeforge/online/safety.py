"""What one learn may do to a model: the feature names it may add, the answers it must leave finite.

The request checks (:mod:`pipeforge.online.bodies`) bound each input; these
checks bound what inputs do to a model over time:

* **Feature names.** A River model keeps state for every feature name it has
  seen (a weight, a mean, a variance), so a client that sends new names
  grows the stored model without end. :func:`feature_names` reads the names a
  model keeps (the string keys of the mappings in its state: feature names,
  and names made from them, such as a one-hot encoder's ``name_value``
  columns; not the names of a pipeline's steps), and a :class:`FeatureBook` keeps them per
  copy, so that the common request, whose names the model knows, costs a set
  lookup per feature. A request that would take the model past
  ``online.max_model_features`` names is refused before it touches the model;
  a learn after which the model holds more (names made from string values)
  is rolled back.
* **Finite answers.** After a learn, the model predicts the sample it
  learnt; an answer that is not finite (a weight that overflowed) rolls
  the learn back.

Both refusals are :class:`UnsafeInputError` (422): the request was well
formed, the model cannot take it. A rolled-back learn leaves the store as
it was (the learn's transaction is not committed) and this process forgets
its copy, which it reloads from the store at the next request.
"""

from __future__ import annotations

import json
import types
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from .records import CatchUp

__all__ = ["UnsafeInputError", "feature_names", "FeatureBook", "refuse_non_finite"]

_SCALARS = frozenset((str, bytes, int, float, complex, bool, type(None)))
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
_DEPTH = 50


class UnsafeInputError(RequestError):
    """A well-formed request the model cannot take safely; nothing was stored (422)."""

    http_status = 422


def _is_model(value: Any) -> bool:
    kind = type(value)
    return callable(getattr(kind, "learn_one", None)) or callable(
        getattr(kind, "transform_one", None)
    )


def _inner(values: Any) -> list[Any]:
    """The values worth looking into (not plain numbers and strings; exact types: fast)."""
    return [value for value in values if type(value) not in _SCALARS]


def _children(item: Any) -> tuple[list[str], list[Any]]:
    """The string keys of ``item`` (when it is a mapping of state) and the parts to look into.

    Keys are not counted when every value is a model (a pipeline's steps) or
    ``None`` or a set (a table of method names).
    """
    kind = type(item)
    if kind in _SCALARS or isinstance(item, _OPAQUE):
        return [], []
    if isinstance(item, dict) or callable(getattr(kind, "items", None)):
        try:
            keys, values = list(item.keys()), list(item.values())
        except Exception:  # an object whose keys() or values() wants arguments, or fails
            return [], []
        parts = _inner(values)
        if parts and len(parts) == len(values) and all(map(_is_model, parts)):
            return [], parts
        if all(value is None or type(value) in (set, frozenset) for value in values):
            return [], parts
        return [key for key in keys if type(key) is str], parts
    if isinstance(item, list | tuple | set | frozenset | deque):
        return [], _inner(item)
    attributes = getattr(item, "__dict__", None)
    if isinstance(attributes, dict):
        return [], _inner(attributes.values())
    return [], []


def feature_names(model: Any, stop_after: int | None = None) -> set[str]:
    """The names ``model`` keeps state for; the walk stops once it found more than ``stop_after``.

    A model may say itself (``known_feature_names()``, as
    :class:`~pipeforge.online.partial_fit.PartialFitModel` does); else the
    string keys of every mapping in its state are counted, which is what
    River's models keep per feature.
    """
    own = getattr(type(model), "known_feature_names", None)
    if callable(own):
        return set(own(model))
    names: set[str] = set()
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(model, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _DEPTH or id(item) in seen:
            continue
        seen.add(id(item))
        keys, parts = _children(item)
        names.update(keys)
        if stop_after is not None and len(names) > stop_after:
            break
        stack.extend((part, depth + 1) for part in parts)
    return names


class FeatureBook:
    """The feature names one process's copy of a model knows, against ``limit``.

    Use it under the copy's lock. The names are read from the model when
    the copy is new or replaced, and kept up to date from what the copy
    learns (here or, through :meth:`caught_up`, in other processes).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._model: Any = None
        self._names: set[str] | None = None

    def known(self, model: Any) -> set[str]:
        """The names ``model`` knows (read again when it is another object than last time)."""
        if self._names is None or self._model is not model:
            self._names = feature_names(model, self.limit)
            self._model = model
        return self._names

    def check(self, model: Any, features: Mapping[str, Any]) -> bool:
        """Refuse ``features`` when their new names would take ``model`` past the limit.

        Only names with numbers (or true/false, null) are counted here: a
        model keeps those names as they are. What a string value adds
        depends on the model (a one-hot encoder keeps ``name_value``), so it
        is counted after the learn (:meth:`after_learn`). Returns whether
        using the features may add names to the model (new names, or string
        values), so that the caller reads the names again afterwards
        (:meth:`after_learn`, :meth:`forget`).
        """
        known = self.known(model)
        new = [name for name in features if name not in known]
        if not new:
            return any(isinstance(value, str) for value in features.values())
        counted = [name for name in new if not isinstance(features[name], str)]
        if counted and len(known) + len(counted) > self.limit:
            raise UnsafeInputError(
                f"the model knows {len(known)} feature names and this request brings "
                f"{len(counted)} new ones (such as {counted[0]!r}); a model may know at most "
                f"{self.limit} (online.max_model_features)"
            )
        return True

    def after_learn(self, model: Any) -> None:
        """Read the names of ``model`` after a learn; :class:`UnsafeInputError` if too many."""
        self._names = feature_names(model, self.limit)
        self._model = model
        if len(self._names) > self.limit:
            self.forget()
            raise UnsafeInputError(
                f"learning this sample would make the model know more than {self.limit} "
                "feature names (online.max_model_features); it was not learnt"
            )

    def forget(self) -> None:
        """Read the names again at the next check (after a predict that may have added some)."""
        self._names = None

    def caught_up(self, model_before: Any, catch: CatchUp) -> None:
        """Add what a copy learnt by replaying the log of other processes (``catch``)."""
        if self._names is None or self._model is not model_before or catch.snapshot is not None:
            self.forget()
            return
        for _version, features, _y in catch.entries:
            sample = json.loads(features)
            self._names.update(sample)
            if any(isinstance(value, str) for value in sample.values()):
                self.forget()
                return


def refuse_non_finite(name: str, answer: Any) -> UnsafeInputError:
    """The 422 of a learn after which the model answers its own sample with ``answer``."""
    return UnsafeInputError(
        f"learning this sample would make model {name!r} answer it with a number that is not "
        f"finite ({answer!r}); it was not learnt (scale the features, or lower the learning "
        "rate)"
    )
