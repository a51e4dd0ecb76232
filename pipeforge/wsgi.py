"""The WSGI entry point: ``gunicorn pipeforge.wsgi:app``.

The only module that reads the environment at import: it builds the config
named by ``PIPEFORGE_CONFIG`` (in ``predict`` mode) and the app, and starts
the background components (the model cache refresh) in this process. Under
gunicorn each worker imports it after forking, so each worker gets its own
threads; with ``--preload`` the app restarts them in every forked worker.
Under gunicorn it also gives ``/metrics`` a directory shared by the workers
(:func:`pipeforge.metrics.prepare_multiprocess`).

A broken config is logged as one line and stops the server: under gunicorn
the error becomes an ``AppImportError`` so the master halts instead of
respawning workers that cannot boot.
"""

from __future__ import annotations

import logging
import sys

from .errors import PipeforgeError

logger = logging.getLogger(__name__)


def _load():
    from .config import initialize_config
    from .server import metrics
    from .server.app import create_app

    try:
        config = initialize_config(__mode__="predict")
        if metrics.settings(config) is not None:
            metrics.prepare_multiprocess()  # before prometheus_client is imported
        return create_app(config, start_background=True)
    except (PipeforgeError, ImportError, OSError) as exc:
        message = f"pipeforge cannot start the web service: {exc}"
        if "gunicorn" in sys.modules:
            from gunicorn.errors import AppImportError

            raise AppImportError(message) from None  # gunicorn prints it and halts
        logger.critical(message)
        raise


app = _load()
