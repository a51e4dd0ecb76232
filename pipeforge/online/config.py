"""Reading the ``online_models`` and ``online`` config entries.

::

    online_models:
      taxi-times:                              # the model's name in the API
        model: {__factory__: river.linear_model.LinearRegression}
        flavor: regression                     # regression | binary | multiclass
        default: true                          # optional; else the first one
      spam:
        model: {__factory__: sklearn.linear_model.SGDClassifier, loss: log_loss}
        flavor: binary
        classes: [0, 1]                        # scikit-learn classifiers need them
        features: [length, links]              # optional order of the features
    online:                                    # optional
      store: {__factory__: pipeforge.online.RedisStore, url: "redis://127.0.0.1:6379/0"}
      allow_init: false                        # POST /api/init    } guarded by
      allow_upload: false                      # POST /api/model   } online_admin_decorators
      allow_delete: false                      # DELETE /api/model/<name> }
      allow_download: false                    # GET /api/model    } guarded by
      allow_events: false                      # GET /api/stream/events } online_data_decorators
      flavor: regression                       # for uploads before any POST /api/init
      snapshot_every: 100                      # learns between two stored pickles of a model
      stream_seconds: 25                       # an SSE response ends after this; browsers reconnect
      pending_ttl: 604800                      # seconds an id waits for its learn; null: forever
      max_magnitude: 1.0e15                    # the largest number (absolute) a request may hold
      max_features: 1000                       # features in one request
      max_model_features: 10000                # feature names one model may know
      max_streams: 2                           # SSE streams open at once in one process
      drift_detector: adwin                    # on the error stream: adwin | page_hinkley | none

Every problem is a :class:`~pipeforge.errors.ConfigError` naming the file,
the key and what is wrong, raised when the app (or ``pf-online``) starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .bodies import InputLimits
from .drift_watch import check_detector, default_detector
from .flavors import FLAVORS, model_problem
from .partial_fit import as_online_model

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["ModelSpec", "OnlineSettings", "read_settings", "NAME_PATTERN", "check_name"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_MODEL_KEYS = {"model", "flavor", "default", "classes", "features"}
_ONLINE_KEYS = {
    "store",
    "allow_init",
    "allow_upload",
    "allow_delete",
    "allow_download",
    "allow_events",
    "flavor",
    "snapshot_every",
    "stream_seconds",
    "pending_ttl",
    "max_magnitude",
    "max_features",
    "max_model_features",
    "max_streams",
    "drift_detector",
}
#: seconds an ``id`` of /api/predict waits for its learn before it is forgotten (a week)
PENDING_TTL = 7 * 86400


def check_name(name: Any) -> str | None:
    """Why ``name`` cannot name a model (letters, digits, ``_ . -``; up to 100), or ``None``."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return None
    return (
        "a model name must be 1-100 letters, digits, '_', '.' or '-', starting with a letter "
        f"or digit; got {name!r}"
    )


@dataclass
class ModelSpec:
    """A model declared in the config, ready to be stored."""

    name: str
    model: Any
    flavor: str
    default: bool


@dataclass
class OnlineSettings:
    """The ``online`` entry with its defaults filled in."""

    store: Any
    models: list[ModelSpec]
    flavor: str | None
    allow_upload: bool
    snapshot_every: int
    stream_seconds: float
    pending_ttl: float | None = PENDING_TTL
    limits: InputLimits = field(default_factory=InputLimits)
    max_streams: int = 2
    drift_detector: str = "none"  #: River's detector on each model's errors (.drift_watch)


def _error(config: Config, key: str, problem: str) -> ConfigError:
    source = ", ".join(getattr(config, "sources", []) or []) or None
    return ConfigError(problem, source=source, key=key)


def _specs(config: Config) -> list[ModelSpec]:
    entries = config.get("online_models") or {}
    if not isinstance(entries, dict):
        raise _error(
            config,
            "online_models",
            f"must be a mapping of model names to entries; got {type(entries).__name__}",
        )
    specs = []
    for name, entry in entries.items():
        key = f"online_models.{name}"
        problem = check_name(name)
        if problem:
            raise _error(config, key, problem)
        if not isinstance(entry, dict) or "model" not in entry:
            raise _error(
                config, key, "must be a mapping with 'model' (a __factory__ component) and 'flavor'"
            )
        unknown = sorted(set(entry) - _MODEL_KEYS)
        if unknown:
            raise _error(
                config, f"{key}.{unknown[0]}", f"unknown key; expected one of {sorted(_MODEL_KEYS)}"
            )
        flavor = entry.get("flavor")
        if flavor not in FLAVORS:
            raise _error(
                config, f"{key}.flavor", f"must be one of {', '.join(FLAVORS)}; got {flavor!r}"
            )
        default = entry.get("default", False)
        if not isinstance(default, bool):
            raise _error(config, f"{key}.default", f"must be true or false; got {default!r}")
        classes, features = entry.get("classes"), entry.get("features")
        if classes is not None and not isinstance(classes, list | tuple):
            raise _error(config, f"{key}.classes", f"must be a list of labels; got {classes!r}")
        if features is not None and not isinstance(features, list | tuple):
            raise _error(
                config, f"{key}.features", f"must be a list of feature names; got {features!r}"
            )
        try:
            model = as_online_model(entry["model"], classes=classes, features=features)
        except ValueError as exc:
            raise _error(config, f"{key}.model", str(exc)) from None
        problem = model_problem(model, flavor)
        if problem:
            raise _error(config, f"{key}.model", problem)
        specs.append(ModelSpec(name, model, flavor, default))
    defaults = [spec.name for spec in specs if spec.default]
    if len(defaults) > 1:
        raise _error(
            config, "online_models", f"only one model can be the default; got {', '.join(defaults)}"
        )
    if specs and not defaults:
        specs[0].default = True
    return specs


def read_settings(config: Config) -> OnlineSettings:
    """The online settings of ``config`` (ConfigError when something is wrong)."""
    from .sql_store import SQLStore
    from .store import OnlineStore

    online = config.get("online") or {}
    if not isinstance(online, dict):
        raise _error(config, "online", f"must be a mapping; got {type(online).__name__}")
    unknown = sorted(set(online) - _ONLINE_KEYS)
    if unknown:
        raise _error(
            config, f"online.{unknown[0]}", f"unknown key; expected one of {sorted(_ONLINE_KEYS)}"
        )
    store = online.get("store")
    if store is None:
        store = SQLStore()
    elif not isinstance(store, OnlineStore):
        raise _error(
            config,
            "online.store",
            "must be a store made with __factory__: pipeforge.online.SQLStore or pipeforge.online.RedisStore",
        )
    specs = _specs(config)
    flavor = online.get("flavor")
    if flavor is not None and flavor not in FLAVORS:
        raise _error(
            config, "online.flavor", f"must be one of {', '.join(FLAVORS)}; got {flavor!r}"
        )
    if flavor is None:
        flavor = next((spec.flavor for spec in specs if spec.default), None)
    allow_upload = online.get("allow_upload", False)
    if not isinstance(allow_upload, bool):
        raise _error(config, "online.allow_upload", f"must be true or false; got {allow_upload!r}")
    every = online.get("snapshot_every", 100)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise _error(config, "online.snapshot_every", f"must be a positive integer; got {every!r}")
    seconds = online.get("stream_seconds", 25.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 3600:
        raise _error(
            config,
            "online.stream_seconds",
            f"must be a number of seconds in (0, 3600]; got {seconds!r}",
        )
    ttl = online.get("pending_ttl", PENDING_TTL)
    if ttl is not None and (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or ttl < 0
    ):
        raise _error(
            config,
            "online.pending_ttl",
            f"must be a number of seconds (null or 0: keep ids until they are learnt); got {ttl!r}",
        )
    ttl = float(ttl) if ttl else None
    limits, max_streams = _limits(config, online)
    detector = online.get("drift_detector") or default_detector()
    problem = check_detector(detector)
    if problem:
        raise _error(config, "online.drift_detector", problem)
    store.bind(config)
    store.expire_pending(ttl)
    return OnlineSettings(
        store,
        specs,
        flavor,
        allow_upload,
        every,
        float(seconds),
        ttl,
        limits,
        max_streams,
        detector,
    )


def _count(config: Config, online: dict, key: str, default: int) -> int:
    value = online.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(config, f"online.{key}", f"must be a positive integer; got {value!r}")
    return value


def _limits(config: Config, online: dict) -> tuple[InputLimits, int]:
    """The bounds of the online API's inputs, and how many streams one process keeps open."""
    defaults = InputLimits()
    magnitude = online.get("max_magnitude", defaults.max_magnitude)
    if (
        isinstance(magnitude, bool)
        or not isinstance(magnitude, int | float)
        or not math.isfinite(magnitude)
        or magnitude <= 0
    ):
        raise _error(
            config,
            "online.max_magnitude",
            f"must be a positive finite number (e.g. 1.0e15); got {magnitude!r}",
        )
    per_request = _count(config, online, "max_features", defaults.max_features)
    per_model = _count(config, online, "max_model_features", defaults.max_model_features)
    if per_model < per_request:
        raise _error(
            config,
            "online.max_model_features",
            f"must be at least online.max_features ({per_request}); got {per_model}",
        )
    streams = _count(config, online, "max_streams", 2)
    return InputLimits(float(magnitude), per_request, per_model), streams
