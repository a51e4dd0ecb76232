"""Dataset loaders: turn a file, a database query or a schedule into ``(X, y)``.

All loaders follow the component contract: the constructor only stores its
arguments, reading happens when the loader is called. Relative file paths
resolve against the folder of the config file that built the loader (the
config's ``here``), or against the current directory when there is none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config.files import path_base, resolve_path, resolve_sqlite_url
from .errors import ConfigError, DataError
from .interfaces import Background, DatasetLoader
from .sql import create_engine, describe_url

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL

    from .config import Config
    from .process_store import ProcessStore
    from .scheduling import RruleThread

__all__ = [
    "Table",
    "CSV",
    "SQL",
    "PredictionLog",
    "EmptyDatasetLoader",
    "ScheduledDatasetLoader",
]

logger = logging.getLogger(__name__)


def _split(
    frame: pd.DataFrame, target_column: str | None, ndarray: bool, what: str
) -> tuple[Any, Any]:
    """Split a DataFrame into features and target, as arrays when ``ndarray``."""
    y = None
    if target_column is not None:
        if target_column not in frame.columns:
            columns = ", ".join(repr(str(c)) for c in frame.columns)
            raise DataError(
                f"dataset {what} has no target column {target_column!r} (columns: {columns})"
            )
        y = frame[target_column]
        frame = frame.drop(columns=[target_column])
    if ndarray:
        frame = frame.to_numpy()
        y = y.to_numpy() if y is not None else None
    return frame, y


class _FileLoader(DatasetLoader):
    """Reads a delimited text file with pandas; subclasses choose the separator."""

    _default_sep = "\t"

    def __init__(
        self,
        path: str,
        target_column: str | None = None,
        ndarray: bool = True,
        **read_kwargs: Any,
    ):
        self.path = path
        self.target_column = target_column
        self.ndarray = ndarray
        self.read_kwargs = read_kwargs
        self._here: str | None = None

    def initialize_component(self, config: Config) -> None:
        """Remember where relative paths resolve (the config's folder, or the cwd for Palladium configs)."""
        self._here = path_base(config)

    def resolved_path(self) -> str:
        """The path that will be read: relative paths are taken from the config's folder."""
        if not isinstance(self.path, (str, os.PathLike)):
            raise ConfigError(
                f"parameter 'path' of {type(self).__name__} must be a file name or URL; "
                f"got {self.path!r} instead"
            )
        return resolve_path(os.fspath(self.path), self._here)

    def __call__(self) -> tuple[Any, Any]:
        import pandas as pd

        kwargs = {"sep": self._default_sep, **self.read_kwargs}
        path = self.resolved_path()
        logger.debug("reading dataset %s", path)
        try:
            frame = pd.read_csv(path, **kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"bad keyword argument for {type(self).__name__} (passed on to "
                f"pandas.read_csv): {exc}"
            ) from exc
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read dataset {self.path!r}: {exc}") from exc
        return _split(frame, self.target_column, self.ndarray, repr(self.path))


class Table(_FileLoader):
    """Tab-separated file (like ``pandas.read_table``); extra keywords go to pandas.

    Pass ``sep=','`` for comma-separated data, as Palladium's iris example does.
    """

    _default_sep = "\t"


class CSV(_FileLoader):
    """Comma-separated file; extra keywords go to ``pandas.read_csv``."""

    _default_sep = ","


class SQL(DatasetLoader):
    """Rows of an SQL query against any SQLAlchemy URL, via ``pandas.read_sql``."""

    def __init__(
        self,
        url: str,
        sql: str,
        target_column: str | None = None,
        ndarray: bool = True,
        **read_kwargs: Any,
    ):
        self.url = url
        self.sql = sql
        self.target_column = target_column
        self.ndarray = ndarray
        self.read_kwargs = read_kwargs
        self._here: str | None = None

    def initialize_component(self, config: Config) -> None:
        """Remember where relative SQLite files resolve (see ``config.files.path_base``)."""
        self._here = path_base(config)

    def _url(self) -> URL:
        from sqlalchemy.exc import ArgumentError

        try:
            return resolve_sqlite_url(self.url, self._here)
        except (ArgumentError, TypeError, ValueError) as exc:
            raise ConfigError(
                "parameter 'url' of SQL must be an SQLAlchemy URL; "
                f"got {describe_url(self.url) if isinstance(self.url, str) else self.url!r} instead"
            ) from exc

    def __call__(self) -> tuple[Any, Any]:
        import pandas as pd
        import sqlalchemy
        from sqlalchemy.exc import SQLAlchemyError

        url = self._url()
        shown = url.render_as_string(hide_password=True)
        try:
            engine = create_engine(url, owner="SQL")
        except (SQLAlchemyError, ConfigError) as exc:
            raise DataError(f"cannot connect to {shown}: {exc}") from exc
        try:
            with engine.connect() as connection:
                frame = pd.read_sql(sqlalchemy.text(self.sql), connection, **self.read_kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"bad keyword argument for SQL (passed on to pandas.read_sql): {exc}"
            ) from exc
        except (SQLAlchemyError, OSError, ValueError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"cannot read dataset from {shown}: {message}") from exc
        finally:
            engine.dispose()
        return _split(frame, self.target_column, self.ndarray, f"from {shown}")


class PredictionLog(DatasetLoader):
    """What a predict service answered, from its prediction log (docs/releasing.md).

    ``url`` (a database) or ``path`` (a folder of JSON lines files) names the
    log; with neither, the config's model store's database holds it. One row
    per sample the service was asked about: ``X`` the inputs (a ``DataFrame``
    with the service's field names, an array with ``ndarray``), ``y`` the
    ground truth that feedback joined to it. Only samples with feedback are
    read unless ``with_feedback`` is false (then ``y`` is the answer given,
    where no feedback came). ``service``: one entry point only;
    ``since_days``: answered within that many days; ``limit``: at most that
    many requests, the newest.
    """

    def __init__(
        self,
        url: str | None = None,
        path: str | None = None,
        service: str | None = None,
        since_days: float | None = None,
        limit: int | None = None,
        with_feedback: bool = True,
        ndarray: bool = False,
    ):
        self.url = url
        self.path = path
        self.service = service
        self.since_days = since_days
        self.limit = limit
        self.with_feedback = with_feedback
        self.ndarray = ndarray
        self._here: str | None = None
        self._persister: Any = None

    def initialize_component(self, config: Config) -> None:
        """Remember where relative paths resolve and the config's model store."""
        self._here = path_base(config)
        self._persister = config.get("model_persister")

    def __call__(self) -> tuple[Any, Any]:
        import time

        import pandas as pd

        from .release.prediction_log import LogSettings, open_log, read_log

        if self.url and self.path:
            raise ConfigError(
                "PredictionLog takes either 'url' (a database) or 'path' (JSON lines); got both"
            )
        log = open_log(LogSettings(url=self.url, path=self.path), self._persister, self._here)
        since = time.time() - self.since_days * 86400 if self.since_days is not None else None
        entries = read_log(
            log,
            service=self.service,
            since=since,
            limit=self.limit,
            newest_first=self.limit is not None,
            with_feedback=self.with_feedback,
        )
        entries.sort(key=lambda e: e.time)
        rows, targets = [], []
        for logged in entries:
            known = logged.ground_truth or [None] * len(logged.outputs)
            for inputs, output, truth in zip(logged.inputs, logged.outputs, known, strict=False):
                rows.append(inputs)
                targets.append(output if truth is None else truth)
        frame = pd.DataFrame(rows)
        y = pd.Series(targets, name="ground_truth")
        if self.ndarray:
            return frame.to_numpy(), y.to_numpy()
        return frame, y


class EmptyDatasetLoader(DatasetLoader):
    """For models that need no data: returns ``(None, None)``."""

    def __call__(self) -> tuple[None, None]:
        return None, None


class ScheduledDatasetLoader(DatasetLoader, Background):
    """Keeps another loader's data in the process store, refreshed on an rrule.

    ``start()`` loads once and then reloads in a background thread whenever
    ``update_cache_rrule`` (keyword arguments of ``dateutil.rrule.rrule``,
    such as ``{'freq': 'HOURLY'}``) fires. Calling the loader never reads
    the source: it returns what the last load put under ``'data'``, so a
    prediction server can use it without waiting for I/O.
    """

    store_key = "data"

    def __init__(self, impl: Callable[[], tuple[Any, Any]], update_cache_rrule: Mapping[str, Any]):
        self.impl = impl
        self.update_cache_rrule = update_cache_rrule
        self._process_store: ProcessStore | None = None
        self._thread: RruleThread | None = None

    def initialize_component(self, config: Config) -> None:
        """Use the config's process store as the cache."""
        self._process_store = config.process_store

    def _store(self) -> ProcessStore:
        if self._process_store is None:
            from .process_store import ProcessStore

            self._process_store = ProcessStore()
        return self._process_store

    def update_cache(self) -> None:
        """Load the data now and put it into the process store."""
        self._store()[self.store_key] = self.impl()
        logger.info("ScheduledDatasetLoader: data loaded into the process store")

    def _update_logged(self) -> None:
        try:
            self.update_cache()
        except Exception:  # keep the old data; the next tick retries
            logger.exception("ScheduledDatasetLoader: refreshing the data failed")

    def start(self) -> None:
        """Load the data and start refreshing it; a second call does nothing.

        If the first load fails, its error is raised, and the refresh thread
        (already running) loads the data at its next tick.
        """
        if self._thread is not None:
            return
        from .scheduling import RruleThread, make_rrule

        rule = make_rrule(
            self.update_cache_rrule, owner="ScheduledDatasetLoader", parameter="update_cache_rrule"
        )
        try:
            self.update_cache()
        finally:
            # A failed first load is the caller's to report (a script stops on it); a
            # server goes on without the data, and the thread's next tick tries again.
            self._thread = RruleThread(self._update_logged, rule)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop refreshing; the data loaded so far stays in the process store."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(timeout)

    def __call__(self) -> tuple[Any, Any]:
        store = self._store()
        if self.store_key not in store:
            raise DataError(
                "ScheduledDatasetLoader has no data yet: it loads when started "
                "(the server and scripts start it)"
            )
        return store[self.store_key]
