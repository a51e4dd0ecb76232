"""The prediction log: what a predict service answered, kept for feedback, scores and drift.

Reading it (the public reader; :mod:`.drift`, :mod:`.live_scores` and
:class:`pipeforge.dataset.PredictionLog` use it)::

    from pipeforge.release.prediction_log import logs_in, read_log

    log = logs_in(config)["predict_service"]          # the service's log, by config key
    for entry in read_log(log, service="/predict", since=time.time() - 3600):
        entry.inputs          # [{"sepal length": 5.1, ...}, ...]: one dict per sample
        entry.outputs         # one answer per sample
        entry.ground_truth    # one value per sample once feedback came, else None

Each :class:`LoggedPrediction` is one answered request. Outputs, shadow
outputs and ground truths are lists with one value per sample, for a GET's
single sample too (``single`` tells which it was).

Writing it: the service's ``prediction_log`` entry (:func:`log_settings`
checks it) names where the log is kept, a SQL database (``url``; by
default the model store's own ``Database``) or a folder of JSON lines files
(``path``); :mod:`.recording` queues each answer and a background thread
writes them in batches (:class:`LogWriter`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ..errors import ConfigError

__all__ = [
    "LoggedPrediction",
    "LogStore",
    "LogSettings",
    "read_log",
    "iter_log",
    "log_settings",
    "open_log",
    "logs_in",
    "packed_inputs",
    "unpacked_inputs",
]


@dataclasses.dataclass
class LoggedPrediction:
    """One answered request as the log keeps it."""

    request_id: str
    time: float  #: when it was answered (seconds since the epoch)
    service: str  #: the predict service's entry point
    version: int | None  #: the version that answered
    alias: str | None  #: the alias or canary arm that reached it (``None``: the active version)
    #: one ``{field: value}`` per sample (written as :func:`packed_inputs`, read back as dicts)
    inputs: Any
    outputs: list[Any]  #: one answer per sample
    single: bool  #: a GET's one sample (answered with one value, not a list)
    latency: float  #: seconds to answer
    shadow_alias: str | None = None
    shadow_version: int | None = None
    shadow_outputs: list[Any] | None = None  #: the shadow's answers, one per sample
    ground_truth: list[Any] | None = None  #: the feedback, one value per sample, when it came
    feedback_time: float | None = None


class LogStore(Protocol):
    """Where one log is kept (a SQL database or a folder of JSON lines files)."""

    def write(self, entries: list[LoggedPrediction]) -> None:
        """Append ``entries`` (one batch)."""

    def entries(
        self,
        *,
        service: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        with_feedback: bool = False,
    ) -> Iterator[LoggedPrediction]:
        """The logged predictions matching, with their feedback joined."""

    def find(self, request_id: str) -> LoggedPrediction | None:
        """The latest logged prediction of ``request_id``, or ``None``."""

    def add_feedback(self, request_id: str, ground_truth: list[Any], at: float) -> bool:
        """Store the feedback of ``request_id`` once; ``False`` when it has some already."""

    def prune(self, *, before: float | None, keep: int | None) -> int:
        """Drop entries answered before ``before`` and all but the newest ``keep``."""

    def describe(self) -> str:
        """Where the log is, for messages (no password)."""


def iter_log(
    log: LogStore,
    *,
    service: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    with_feedback: bool = False,
) -> Iterator[LoggedPrediction]:
    """The log's entries one by one, oldest first (newest first with ``newest_first``).

    ``service``: one entry point only; ``since``/``until``: answered in
    ``[since, until)`` (seconds since the epoch); ``limit``: at most that many
    (the newest ones with ``newest_first``); ``with_feedback``: only entries
    whose ground truth came. Reading runs on its own connection and never
    holds the writers up.
    """
    return log.entries(
        service=service,
        since=since,
        until=until,
        limit=limit,
        newest_first=newest_first,
        with_feedback=with_feedback,
    )


def read_log(log: LogStore, **criteria: Any) -> list[LoggedPrediction]:
    """:func:`iter_log` as a list (the same keyword arguments)."""
    return list(iter_log(log, **criteria))


# -- the prediction_log entry of a predict service ---------------------------------

_KEYS = (
    "url",
    "path",
    "batch_size",
    "flush_seconds",
    "queue",
    "max_age_days",
    "max_rows",
    "scoring",
    "window",
)


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """A predict service's ``prediction_log`` entry, checked (defaults filled in)."""

    url: str | None = None  #: SQLAlchemy URL; ``None`` with no ``path``: the model store's
    path: str | None = None  #: a folder of JSON lines files instead of a database
    batch_size: int = 500  #: entries per write
    flush_seconds: float = 1.0  #: longest wait before a partial batch is written
    queue: int = 10_000  #: answers waiting to be written; more are dropped and counted
    max_age_days: float | None = None  #: retention by age
    max_rows: int | None = None  #: retention by count (database logs)
    scoring: Any = None  #: the live scores' scorer; ``None``: the config's ``scoring``
    window: int = 1000  #: feedbacks a live score is computed over (the newest)


def _number(value: Any, *, integer: bool, where: str, name: str, minimum: float) -> Any:
    ok = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
    if not ok or value < minimum or (not integer and value != value):
        what = "an integer" if integer else "a number"
        raise ConfigError(
            f"parameter {name!r} of prediction_log must be {what} >= {minimum:g}; "
            f"got {value!r} instead",
            key=where,
        )
    return value


def log_settings(key: str, value: Any) -> LogSettings | None:
    """The checked ``prediction_log`` of the service at config key ``key``; ``None`` when off.

    ``value``: ``None``/``False`` (off), ``True`` (defaults) or a mapping of
    :class:`LogSettings` fields. A wrong one is a :class:`ConfigError` naming
    ``<key>.prediction_log`` and the parameter.
    """
    where = f"{key}.prediction_log"
    if value is None or value is False:
        return None
    if value is True:
        return LogSettings()
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be true, false or a mapping; got {value!r}", key=where)
    from ..config.keys import unknown_key

    for name in value:
        if name not in _KEYS:
            raise ConfigError(unknown_key(name, _KEYS), key=f"{where}.{name}")
    options = dict(value)
    for name in ("url", "path"):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise ConfigError(
                f"parameter {name!r} of prediction_log must be a string; "
                f"got {options[name]!r} instead",
                key=where,
            )
    if options.get("url") and options.get("path"):
        raise ConfigError(
            "give either 'url' (a database) or 'path' (JSON lines), not both", key=where
        )
    for name, integer, minimum in (
        ("batch_size", True, 1),
        ("queue", True, 1),
        ("window", True, 1),
        ("max_rows", True, 1),
        ("flush_seconds", False, 0.01),
        ("max_age_days", False, 0),
    ):
        if options.get(name) is not None:
            options[name] = _number(
                options[name], integer=integer, where=where, name=name, minimum=minimum
            )
    if options.get("path") and options.get("max_rows") is not None:
        raise ConfigError(
            "parameter 'max_rows' of prediction_log works for database logs; "
            "JSON lines logs are kept by 'max_age_days'",
            key=where,
        )
    if options.get("scoring") is not None:
        from .scores import scorer

        if scorer(options["scoring"]) is None:
            raise ConfigError(
                "parameter 'scoring' of prediction_log must be a scorer name such as 'accuracy' "
                f"or 'neg_mean_absolute_error'; got {options['scoring']!r} instead",
                key=where,
            )
    return LogSettings(**options)


def open_log(settings: LogSettings, persister: Any = None, here: str | None = None) -> LogStore:
    """The store of a log: its own database or folder, else the model store's database.

    ``persister``: the config's model persister (a ``CachedUpdatePersister``
    is looked through); its database is used when the settings name none.
    """
    from .log_store import JsonLinesLog, SQLLog

    if settings.path:
        from ..config.files import resolve_path

        return JsonLinesLog(resolve_path(settings.path, here))
    if settings.url:
        from ..sql import create_engine

        return SQLLog(create_engine(settings.url, here=here, owner="prediction_log"))
    impl = persister
    while hasattr(impl, "impl"):
        impl = impl.impl
    engine = getattr(impl, "engine", None)
    if not callable(engine):
        raise ConfigError(
            "the model store is not a database: name one with 'url' (e.g. "
            "'sqlite:///predictions.db') or a folder of JSON lines files with 'path'",
            key="prediction_log",
        )
    return SQLLog(engine)


def logs_in(config: Mapping[str, Any], persister: Any = None) -> dict[str, LogStore]:
    """The prediction log of every predict service of ``config`` that keeps one, by config key.

    Services whose logs are in one database share its tables; each entry
    names its service.
    """
    from .recording import log_of

    if persister is None:
        persister = config.get("model_persister")
    found = {}
    written = getattr(config, "written", None)
    for key in list(config):
        if callable(written) and not _may_log(written(key)):
            continue  # not built for nothing: pf-list builds the model store only
        service = config[key]
        if not hasattr(service, "prediction_log"):
            continue
        log = log_of(key, service, config, persister)
        if log is not None:
            found[key] = log
    return found


def _may_log(entry: Any) -> bool:
    """Whether a config entry, as written, can be a predict service keeping a log."""
    if isinstance(entry, Mapping):
        return bool(entry.get("prediction_log")) or "__copy__" in entry
    return hasattr(entry, "prediction_log")  # built already (or a component given as is)


def packed_inputs(X: Any, names: list[str]) -> dict[str, Any]:
    """A request's samples as the log writes them: ``{"columns": names, "data": rows}``.

    One list of rows instead of a dict per sample: a 100-sample request is
    written about five times cheaper (the array goes to the JSON encoder as
    it is). Readers get ``{field: value}`` dicts back (:func:`unpacked_inputs`).
    """
    data = X.to_numpy().tolist() if hasattr(X, "columns") else X
    return {"columns": list(names), "data": data}


def unpacked_inputs(value: Any) -> Any:
    """The samples of a logged request as ``{field: value}`` dicts (other forms as they are)."""
    if not isinstance(value, Mapping) or "columns" not in value or "data" not in value:
        return value
    names, data = list(value["columns"]), value["data"]
    if data and not isinstance(data[0], list):  # one field given as the sample itself
        name = names[0] if names else "value"
        return [{name: item} for item in data]
    return [dict(zip(names, row, strict=False)) for row in data]
