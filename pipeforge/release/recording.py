"""What happens to an answer after it was sent: the shadow's copy, then the prediction log.

:func:`sink_for` gives the predict flow (:mod:`pipeforge.server.release_flow`)
one :class:`RecordingSink` per predict service that has a ``prediction_log``
or a ``shadow`` entry (``None`` for the others, which pay nothing). Its
:meth:`~RecordingSink.answered` only queues:

1. a ``fraction`` of the answers goes to the shadow's queue; its thread asks
   the shadow alias's model (:func:`.aliases.read_alias`: the model cache's copy)
   for its prediction of the same inputs, and fills in ``shadow_alias``,
   ``shadow_version`` and ``shadow_output``; when that queue is full the
   answer is logged without a shadow and the drop is counted;
2. the log's queue takes the answer (after its shadow, if any); its thread
   turns answers into JSON and writes them in batches
   (:mod:`.log_store`), and applies the retention every minute. A full queue
   drops the answer and counts it.

The service entry (checked here, one line naming the key)::

    predict_service:
      ...
      prediction_log: {url: "sqlite:///predictions.db", max_age_days: 30}
      shadow: {alias: challenger, fraction: 0.1, queue: 100}
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..config.files import path_base
from ..errors import ConfigError
from ..model_info import label_rows
from .answers import Answered
from .background import Lane
from .prediction_log import (
    LoggedPrediction,
    LogSettings,
    LogStore,
    log_settings,
    open_log,
    packed_inputs,
)

__all__ = [
    "RecordingSink",
    "ShadowSettings",
    "sink_for",
    "log_of",
    "settings_of",
    "shadow_settings",
    "input_rows",
]

logger = logging.getLogger(__name__)

_PRUNE_SECONDS = 60.0
_ATTRIBUTE = "_pipeforge_release"
_SETUP_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class ShadowSettings:
    """A predict service's ``shadow`` entry, checked."""

    alias: str  #: the alias whose version gets a copy of the requests
    fraction: float = 1.0  #: the share of requests copied
    queue: int = 100  #: copies waiting for the shadow; more are dropped and counted


def shadow_settings(key: str, value: Any) -> ShadowSettings | None:
    """The checked ``shadow`` entry of the service at config key ``key``; ``None`` when absent."""
    where = f"{key}.shadow"
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"must be a mapping such as {{alias: challenger}}; got {value!r}", key=where
        )
    from ..config.keys import unknown_key

    known = ("alias", "fraction", "queue")
    for name in value:
        if name not in known:
            raise ConfigError(unknown_key(name, known), key=f"{where}.{name}")
    alias = value.get("alias")
    if not isinstance(alias, str) or not alias:
        raise ConfigError(
            f"parameter 'alias' of shadow must name an alias; got {alias!r} instead", key=where
        )
    fraction = value.get("fraction", 1.0)
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ConfigError(
            f"parameter 'fraction' of shadow must be a number in (0, 1]; got {fraction!r} instead",
            key=where,
        )
    size = value.get("queue", 100)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(
            f"parameter 'queue' of shadow must be an integer >= 1; got {size!r} instead", key=where
        )
    return ShadowSettings(alias, float(fraction), size)


def input_rows(X: Any, names: list[str]) -> list[dict[str, Any]]:
    """The samples of a model input (array or ``DataFrame``) as ``{name: value}`` dicts."""
    if hasattr(X, "to_dict") and hasattr(X, "columns"):
        return [{str(k): v for k, v in row.items()} for row in X.to_dict("records")]
    rows = X.tolist() if hasattr(X, "tolist") else list(X)
    if getattr(X, "ndim", 2) == 1 or (rows and not isinstance(rows[0], list | tuple)):
        name = names[0] if names else "value"
        return [{name: value} for value in rows]
    return [dict(zip(names, row, strict=False)) for row in rows]


def _per_sample(output: Any, single: bool) -> list[Any]:
    if single:
        return [output]
    return output.tolist() if hasattr(output, "tolist") else list(output)


def _entry(answer: Answered) -> LoggedPrediction:
    shadow = answer.shadow_output
    return LoggedPrediction(
        request_id=answer.request_id,
        time=answer.time,
        service=answer.service,
        version=answer.version,
        alias=answer.alias,
        inputs=packed_inputs(answer.X, answer.names),
        outputs=_per_sample(answer.output, answer.single),
        single=answer.single,
        latency=answer.latency,
        shadow_alias=answer.shadow_alias,
        shadow_version=answer.shadow_version,
        shadow_outputs=None if shadow is None else _per_sample(shadow, False),
    )


class RecordingSink:
    """Shadows and logs the answers of one predict service, off the request path."""

    def __init__(
        self,
        service: Any,
        persister: Any,
        log: LogStore | None,
        settings: LogSettings | None,
        shadow: ShadowSettings | None,
    ) -> None:
        self.service = service
        self.persister = persister
        self.log = log
        self.settings = settings
        self.shadow = shadow
        self._random = random.Random()
        self._observers: list[Callable[[str, int], None]] = []
        self.log_lane: Lane | None = None
        self.shadow_lane: Lane | None = None
        if log is not None and settings is not None:
            retention = settings.max_age_days is not None or settings.max_rows is not None
            self.log_lane = Lane(
                "pipeforge-prediction-log",
                self._write,
                size=settings.queue,
                batch_size=settings.batch_size,
                flush_seconds=settings.flush_seconds,
                tick=self._prune if retention else None,
                tick_seconds=_PRUNE_SECONDS,
            )
            self.log_lane.observe(lambda event, n: self._tell(f"log_{event}", n))
        if shadow is not None:
            self.shadow_lane = Lane("pipeforge-shadow", self._run_shadow, size=shadow.queue)
            self.shadow_lane.observe(lambda event, n: self._tell(f"shadow_{event}", n))

    def observe(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(event, n)`` as answers are logged, shadowed, dropped or fail.

        Events: ``logged``, ``log_dropped``, ``log_failed``, ``shadowed``,
        ``shadow_dropped``, ``shadow_failed``. The callback runs on the
        sink's threads (or the request's, for drops); it must be quick.
        """
        self._observers.append(callback)

    def _tell(self, event: str, n: int) -> None:
        for callback in self._observers:
            try:
                callback(event, n)
            except Exception:
                logger.exception("an observer of the prediction log failed")

    # -- the request path: queue and return ------------------------------------------

    def answered(self, answer: Answered) -> None:
        """Queue ``answer`` for the shadow (a ``fraction`` of them) and the log."""
        shadow = self.shadow
        if shadow is not None and self._random.random() < shadow.fraction:
            answer.shadow_alias = shadow.alias
            assert self.shadow_lane is not None
            if self.shadow_lane.put(answer):
                return
            answer.shadow_alias = None
        if self.log_lane is not None:
            self.log_lane.put(answer)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was answered so far is shadowed and written (tests, feedback)."""
        done = True
        for lane in (self.shadow_lane, self.log_lane):
            if lane is not None:
                done = lane.flush(timeout) and done
        return done

    def close(self) -> None:
        """Write what is queued and stop the threads."""
        for lane in (self.shadow_lane, self.log_lane):
            if lane is not None:
                lane.close()

    # -- the threads --------------------------------------------------------------

    def _run_shadow(self, batch: list[Answered]) -> None:
        assert self.shadow is not None
        for answer in batch:
            try:
                model = self._shadow_model(self.shadow.alias)
                output = self.service.predict(model, answer.X)
                if getattr(self.service, "predict_proba", False):
                    output = label_rows(model, output)
                answer.shadow_output = output
                answer.shadow_version = (getattr(model, "__metadata__", None) or {}).get("version")
            except Exception:
                logger.warning(
                    "the shadow %r of %s could not answer",
                    self.shadow.alias,
                    answer.service,
                    exc_info=True,
                )
                self._tell("shadow_failed", 1)
            else:
                self._tell("shadowed", 1)
            if self.log_lane is not None:
                self.log_lane.put(answer)

    def _shadow_model(self, alias: str) -> Any:
        from .aliases import read_alias

        return read_alias(self.persister, alias)

    def _write(self, batch: list[Answered]) -> None:
        assert self.log is not None
        self.log.write([_entry(answer) for answer in batch])
        self._tell("logged", len(batch))

    def _prune(self) -> None:
        import time

        assert self.log is not None and self.settings is not None
        days = self.settings.max_age_days
        before = time.time() - days * 86400 if days is not None else None
        removed = self.log.prune(before=before, keep=self.settings.max_rows)
        if removed:
            logger.info("prediction log %s: %d old entries removed", self.log.describe(), removed)


def settings_of(key: str, service: Any) -> tuple[LogSettings | None, ShadowSettings | None]:
    """The checked ``prediction_log`` and ``shadow`` of a service (:class:`ConfigError` if wrong)."""
    return (
        log_settings(key, getattr(service, "prediction_log", None)),
        shadow_settings(key, getattr(service, "shadow", None)),
    )


def _setup(key: str, service: Any, config: Mapping[str, Any], persister: Any) -> dict[str, Any]:
    """The service's log and sink, made once per service object."""
    with _SETUP_LOCK:
        found = getattr(service, _ATTRIBUTE, None)
        if found is not None:
            return found
        from ..guards import source_of

        try:
            settings, shadow = settings_of(key, service)
            log = None
            if settings is not None:
                try:
                    log = open_log(settings, persister, path_base(config))
                except ConfigError as exc:
                    exc.key = f"{key}.prediction_log"
                    raise
        except ConfigError as exc:
            raise exc.located(source=source_of(config, key)) from None
        sink = None
        if settings is not None or shadow is not None:
            sink = RecordingSink(service, persister, log, settings, shadow)
        found = {"log": log, "sink": sink, "settings": settings}
        setattr(service, _ATTRIBUTE, found)
        return found


def sink_for(
    key: str, service: Any, config: Mapping[str, Any], persister: Any
) -> RecordingSink | None:
    """The sink of the predict service at config key ``key``; ``None`` without log or shadow.

    The same sink for every call with one service. Raises :class:`ConfigError`
    (naming ``<key>.prediction_log`` or ``<key>.shadow``) for a wrong entry.
    """
    return _setup(key, service, config, persister)["sink"]


def log_of(key: str, service: Any, config: Mapping[str, Any], persister: Any) -> LogStore | None:
    """The prediction log of the service at ``key`` (shared with its sink); ``None`` if it keeps none."""
    return _setup(key, service, config, persister)["log"]
