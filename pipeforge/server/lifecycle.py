"""One app's state and its background work: started, stopped, and restarted after a fork.

:class:`AppState` is what the views of one app share (the config, the
process store, the job queue, the predict services); it lives on
``app.extensions["pipeforge"]``, never in a module global. Background
components (the model cache's refresh thread, scheduled data loaders, the
pipelines' op-store follower) start only when the server says so
(:func:`run_background`), and again in each process forked from this one
(``gunicorn --preload``, and ``pf-serve``'s workers under granian or gunicorn,
which are forked from the process that loaded the app, also when the server
replaces one or reloads): a forked worker inherits no threads.

A component that fails to start because something it reaches is down
(the model store, a database, Redis) does not stop the worker: the
failure is logged and the others start; the component's own routes answer
503 until it recovers (the model cache retries by itself). Only a
:class:`~pipeforge.errors.ConfigError` stops the start: a wrong config is
no outage to wait out.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..interfaces import Background
from ..jobs import JobQueue, unique

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["AppState", "current_state", "run_background"]

logger = logging.getLogger(__name__)


class AppState:
    """What the views of one app need: the config and its shared helpers."""

    def __init__(self, config: Config, process_store: Any, jobs: JobQueue) -> None:
        self.config = config
        self.process_store = process_store
        self.jobs = jobs
        self.service_metadata = dict(config.get("service_metadata") or {})
        self.model_persister: Any = config.get("model_persister")
        self.services: list[tuple[str, Any]] = []
        self.views: dict[str, Any] = {}  # endpoint -> undecorated view of flask_add_url_rules
        self.stoppers: list[Callable[[], None]] = []  # called by stop(): the app's own threads
        self.background_pid: int | None = None
        self.extra_background: list[Any] = []  # e.g. the pipelines' op-store follower
        self._process: Any = None

    def memory_usage(self) -> int:
        """This process's resident memory in MB."""
        import psutil

        if self._process is None or self._process.pid != os.getpid():
            self._process = psutil.Process()
        return round(self._process.memory_info().rss / 2**20)

    def start_background(self) -> None:
        """Start the config's background components (model cache refresh, scheduled data).

        One that fails for anything but a :class:`~pipeforge.errors.ConfigError`
        is logged and skipped: a worker serves without it rather than not at all
        (a scheduled component retries on its own schedule).
        """
        background = getattr(self.config, "background", None)
        if callable(background):
            components = list(background())
        else:
            components = [c for c in unique(self.config.values()) if isinstance(c, Background)]
        for component in [*components, *self.extra_background]:
            try:
                component.start()
            except ConfigError:
                raise
            except Exception:
                logger.exception(
                    "%r failed while starting; serving without it until it recovers", component
                )
        self.background_pid = os.getpid()

    def stop(self) -> None:
        """Stop the background components and the job pool (for tests and shutdown)."""
        self.jobs.shutdown(wait=False)
        for stop in self.stoppers:
            stop()
        if self.background_pid is None:
            return
        for component in self.extra_background:
            component.stop()
        if hasattr(self.config, "stop"):
            self.config.stop()
        else:
            for component in unique(self.config.values()):
                if isinstance(component, Background):
                    component.stop()
        self.background_pid = None


def current_state() -> AppState:
    """The state of the app handling the current request (inside a view)."""
    from flask import current_app

    return current_app.extensions["pipeforge"]


def run_background(state: AppState) -> None:
    """Start ``state``'s background components now and in every process forked from this one."""
    state.start_background()
    os.register_at_fork(after_in_child=functools.partial(_restart_after_fork, weakref.ref(state)))


def _restart_after_fork(ref: weakref.ref[AppState]) -> None:
    # A forked server worker (gunicorn --preload) has no threads: start them again.
    state = ref()
    if state is not None and state.background_pid not in (None, os.getpid()):
        try:
            state.start_background()
        except Exception:
            logger.exception("starting background components in the forked worker failed")
