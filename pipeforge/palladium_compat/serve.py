"""``pld-devserver`` and ``pld-dockerize``: Palladium's serving commands, run by pipeforge.

``pld-devserver`` serves the project's ``palladium.server.app`` (the Flask
app user modules may add routes to, :func:`~pipeforge.palladium_compat.legacy.shared_app`)
on ``0.0.0.0`` by default, as Palladium did. ``pld-dockerize`` writes
pipeforge's Dockerfiles spoken in Palladium's names (``PALLADIUM_CONFIG``,
``pld-fit``, ``palladium.wsgi:app``) into the current directory, where
Palladium wrote them. Errors and exit statuses are pipeforge's
(:func:`pipeforge.cli.run_script`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..cli import serve as serve_scripts
from ..cli.run import run_script
from ..errors import PipeforgeError, UsageError
from .legacy import shared_app

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["pld_devserver_main", "pld_dockerize_main"]


DEVSERVER_DOC = """Serve the web API for development (Palladium's pld-devserver, run by pipeforge).

Serves the app 'palladium.server.app' of the configuration, as
'gunicorn palladium.wsgi:app' does; use gunicorn for anything but development.

Usage:
  pld-devserver [options]

Options:
  --host=<host>     The interface to listen on [default: 0.0.0.0].
  --port=<port>     The port to listen on [default: 5000].
  --debug=<debug>   1: Flask debug mode, and tracebacks of startup errors [default: 0].
  -h --help         Show this screen.
"""


def _devserver(args: Mapping[str, Any], config: Config) -> None:
    serve_scripts.serve(args, config, flask_app=shared_app())


def pld_devserver_main(argv: Sequence[str] | None = None) -> int:
    """``pld-devserver``: serve the project's ``palladium.server.app`` with Flask's server."""
    argv = serve_scripts.bare_debug_means_one(argv)
    return run_script(DEVSERVER_DOC, argv, _devserver, mode="predict")


DOCKERIZE_DOC = """Write (and build) Docker images for an application (Palladium's pld-dockerize, run by pipeforge).

PATH_TO_APP holds config.py (and optionally requirements.txt, a
python_packages/ folder and setup.py). BASE_IMAGE_NAME must have pipeforge
installed. Dockerfile-app and Dockerfile-predict are written into the
current directory, as Palladium did; IMAGE_NAME gets the application,
IMAGE_NAME-predict also fits the model and serves palladium.wsgi:app with
gunicorn on port 8000.

Usage:
  pld-dockerize [options] PATH_TO_APP BASE_IMAGE_NAME IMAGE_NAME

Options:
  -d          Write the Dockerfiles but do not build the images.
  --debug     Show tracebacks of errors.
  -h --help   Show this screen.
"""

# pipeforge's Dockerfiles, spoken in Palladium's names.
_PALLADIUM_WORDS = (
    ("PIPEFORGE_CONFIG", "PALLADIUM_CONFIG"),
    ("pipeforge.wsgi:app", "palladium.wsgi:app"),
    ("RUN pf-fit", "RUN pld-fit"),
    ("pf-dockerize", "pld-dockerize"),
)


def _dockerize(args: Mapping[str, Any], config: None) -> int:
    from ..cli import dockerize

    app_dir = args["PATH_TO_APP"]
    if not os.path.isdir(app_dir):
        raise UsageError(f"PATH_TO_APP {app_dir!r} is not a directory")
    image = args["IMAGE_NAME"]
    files = dockerize.dockerfiles(app_dir, args["BASE_IMAGE_NAME"], image, server="gunicorn")
    engine = [] if args["-d"] else dockerize.find_engine()  # before anything is written
    for name, text in files.items():
        for ours, theirs in _PALLADIUM_WORDS:
            text = text.replace(ours, theirs)
        with open(name, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {name}")
    # The build context gets what pf-dockerize writes there: what stays out, the pinned versions.
    for name, text in (
        (".dockerignore", dockerize.dockerignore(app_dir)),
        ("requirements-lock.txt", dockerize.requirements_lock(app_dir)),
    ):
        print(dockerize.write_generated(os.path.join(app_dir, name), text, False))
    if args["-d"]:
        return 0
    for dockerfile, tag in (
        ("Dockerfile-app", image),
        ("Dockerfile-predict", dockerize.predict_image_name(image)),
    ):
        command = [*engine, "build", "-f", dockerfile, "-t", tag, app_dir]
        print("running: " + " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            raise PipeforgeError(f"building {tag} failed (see the output of the build above)")
        print(f"built {tag}")
    return 0


def pld_dockerize_main(argv: Sequence[str] | None = None) -> int:
    """``pld-dockerize``: write (and build) the images of a Palladium application."""
    return run_script(DOCKERIZE_DOC, argv, _dockerize, needs_config=False)
