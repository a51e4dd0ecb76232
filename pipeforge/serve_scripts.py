"""The serving scripts: ``pf-devserver`` and ``pf-dockerize`` (which lives in ``dockerize``).

Both run through :func:`pipeforge.cli.run_script` (exit 0 on success, 2 on
usage/config errors, 1 on other failures). For production, serve
``pipeforge.wsgi:app`` with gunicorn instead of ``pf-devserver``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cli import run_script
from .dockerize import DOCKERIZE_DOC, dockerfiles, dockerize_main, predict_image_name
from .errors import UsageError

__all__ = ["devserver_main", "dockerize_main", "dockerfiles", "predict_image_name", "DOCKERIZE_DOC"]

DEVSERVER_DOC = """Serve the configured model with Flask's development server.

Uses the config named by PIPEFORGE_CONFIG, like 'gunicorn pipeforge.wsgi:app'
does; use gunicorn (see docs/serving.md) for anything but development.

Usage:
  pf-devserver [options]

Options:
  --host=<host>   The interface to listen on [default: 127.0.0.1].
  --port=<port>   The port to listen on [default: 5000].
  --debug         Flask debug mode, and tracebacks of startup errors.
  -h --help       Show this screen.
"""


def devserver_main(argv: Sequence[str] | None = None) -> int:
    """``pf-devserver``: run the app on Flask's built-in server."""

    def body(args, config):
        from .server import create_app

        port = args["--port"]
        if not str(port).isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--port must be a port number between 1 and 65535; got {port!r}")
        # run_script has started the background components (the model cache) already.
        app = create_app(config)
        app.run(host=args["--host"], port=int(port), debug=args["--debug"], use_reloader=False)

    return run_script(DEVSERVER_DOC, argv, body, mode="predict")
