"""The serving scripts: ``pf-devserver`` and ``pf-dockerize`` (which lives in ``dockerize``).

Both run through :func:`pipeforge.cli.run_script` (exit 0 on success, 2 on
usage/config errors, 1 on other failures). For production, serve
``pipeforge.wsgi:app`` with gunicorn instead of ``pf-devserver``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .dockerize import DOCKERIZE_DOC, dockerfiles, dockerize_main, predict_image_name
from .run import run_script

if TYPE_CHECKING:
    from flask import Flask

    from ..config import Config

__all__ = [
    "devserver_main",
    "dockerize_main",
    "dockerfiles",
    "predict_image_name",
    "serve",
    "DOCKERIZE_DOC",
]

DEVSERVER_DOC = """Serve the configured model with Flask's development server.

Uses the config named by PIPEFORGE_CONFIG, like 'gunicorn pipeforge.wsgi:app'
does, with the same background work (model cache refresh, pipeline loads
followed); use gunicorn (see docs/serving.md) for anything but development.

Usage:
  pf-devserver [options]

Options:
  --host=<host>   The interface to listen on [default: 127.0.0.1].
  --port=<port>   The port to listen on [default: 5000].
  --debug=<0|1>   1: Flask debug mode, and tracebacks of startup errors
                  (a bare --debug means 1) [default: 0].
  -h --help       Show this screen.
"""

_DEBUG_VALUES = {"0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}


def bare_debug_means_one(argv: Sequence[str] | None) -> list[str]:
    """``--debug`` alone stands for ``--debug=1`` (the option takes a value, as in Palladium)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return ["--debug=1" if arg == "--debug" else arg for arg in argv]


def serve(args: Mapping[str, Any], config: Config, *, flask_app: Flask | None = None) -> None:
    """Run ``config``'s app on Flask's server with the ``--host/--port/--debug`` of ``args``."""
    from ..server.app import create_app

    port = args["--port"]
    if not str(port).isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--port must be a port number between 1 and 65535; got {port!r}")
    debug = _DEBUG_VALUES.get(str(args["--debug"]).strip().lower())
    if debug is None:
        raise UsageError(f"--debug must be 0 or 1; got {args['--debug']!r}")
    # Like gunicorn's workers: the model cache refresh, scheduled data and the
    # pipelines' follower of recorded loads run in this process (starting the
    # components run_script started already is harmless).
    app = create_app(config, start_background=True, flask_app=flask_app)
    try:
        app.run(host=args["--host"], port=int(port), debug=debug, use_reloader=False)
    finally:
        app.extensions["pipeforge"].stop()


def devserver_main(argv: Sequence[str] | None = None) -> int:
    """``pf-devserver``: run the app on Flask's built-in server."""
    return run_script(DEVSERVER_DOC, bare_debug_means_one(argv), serve, mode="predict")
