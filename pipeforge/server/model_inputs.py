"""Which models need their input as a pandas ``DataFrame``, and which take a plain array.

A scikit-learn model fitted on a ``DataFrame`` remembers the column names
(``feature_names_in_``). Given a ``DataFrame`` again, it converts it back to
an array after checks that cost about 0.3 ms per call in scikit-learn 1.9
(the iris model itself predicts in 0.08 ms) -- more than the rest of a
``/predict`` request. For most estimators the names are only checked, never
used: once :class:`~pipeforge.predict_service.PredictService` has checked
that its mapping names the model's columns in order, an array of the same
floats gives the same answer. Estimators that do use the names (column
transformers, functions of the user's, estimators pipeforge cannot see
into) keep getting a ``DataFrame``.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

from ..model_info import label_rows

__all__ = ["label_rows", "mapping_misfit", "needs_frame", "stored_mapping"]

# scikit-learn's warning when a model fitted with names gets an array; the
# names were checked before, so it says nothing here.
logger = logging.getLogger(__name__)

_NAMES_WARNING = "X does not have valid feature names"
_filter_lock = threading.Lock()


def needs_frame(model: Any) -> bool:
    """Whether ``model`` must be given a ``DataFrame`` with its column names.

    ``False`` for models fitted without names and for scikit-learn models
    that only check the names (then scikit-learn's warning about a missing
    names is silenced for the process).
    """
    if getattr(model, "feature_names_in_", None) is None:
        return False
    if not _checks_names_only(model):
        return True
    _silence_names_warning()
    return False


def mapping_misfit(where: str, which: str, names: list[str], model: Any) -> str | None:
    """Why ``model`` cannot take samples of the fields ``names`` (in order), or ``None``.

    ``where`` names the service and ``which`` the model in the message. Only
    what the model tells about itself is compared: its number of features
    and, when fitted on a ``DataFrame``, its column names.
    """
    expected = getattr(model, "n_features_in_", None)
    if isinstance(expected, int) and expected != len(names):
        return (
            f"{where}: its mapping has {len(names)} fields ({', '.join(names)}) "
            f"but {which} expects {expected} features; fix 'mapping' in the config or "
            "activate a model that fits it"
        )
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and [str(n) for n in fitted] != names:
        return (
            f"{where}: its mapping names the fields {names} but {which} was fitted on "
            f"the columns {[str(n) for n in fitted]} (same names, same order needed); "
            "fix 'mapping' in the config or activate a model that fits it"
        )
    return None


def _checks_names_only(estimator) -> bool:
    cls = type(estimator)
    module = cls.__module__ or ""
    if not module.startswith("sklearn."):
        return False  # third-party or own code: it may select columns by name
    if module.startswith("sklearn.compose") or cls.__name__ == "FunctionTransformer":
        return False  # selects columns by name, or calls the user's function on the frame
    if module == "sklearn.pipeline" and cls.__name__ == "Pipeline":
        return all(
            step is None or step == "passthrough" or _checks_names_only(step)
            for _, step in estimator.steps
        )
    # Ensembles, searches and other meta-estimators are not looked into.
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return False
    return not any(_holds_estimator(value) for value in get_params(deep=False).values())


def _holds_estimator(value) -> bool:
    if hasattr(value, "fit"):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_estimator(item) for item in value)
    return False


def _silence_names_warning() -> None:
    # Looked up each time (once per model): a test runner may have reset the filters since.
    with _filter_lock:
        for action, message, *_ in warnings.filters:
            if action == "ignore" and getattr(message, "pattern", None) == _NAMES_WARNING:
                return
        warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)


def stored_mapping(persister: Any) -> list[tuple[str, str]] | None:
    """The ``mapping`` the store's active model carries in its metadata, or ``None``.

    MLflow models carry the one their signature gives
    (:mod:`pipeforge.persistence.mlflow_folder`); a predict service without
    a ``mapping`` of its own takes it from there when it starts.
    """
    if persister is None:
        return None
    try:
        active = persister.list_properties().get("active-model")
        listed = persister.list_models()
    except Exception as exc:  # the service then says it has no mapping, naming the cause
        logger.warning("cannot read the store's mapping: %s: %s", type(exc).__name__, exc)
        return None
    for metadata in listed:
        if str(metadata.get("version")) == str(active) and metadata.get("mapping"):
            return [(str(name), str(kind)) for name, kind in metadata["mapping"]]
    return None
