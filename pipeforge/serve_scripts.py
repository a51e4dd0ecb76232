"""The serving scripts: ``pf-devserver`` and ``pf-dockerize``.

Both run through :func:`pipeforge.cli.run_script` (exit 0 on success, 2 on
usage/config errors, 1 on other failures). For production, serve
``pipeforge.wsgi:app`` with gunicorn instead of ``pf-devserver``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from .cli import run_script
from .errors import PipeforgeError, UsageError

__all__ = ["devserver_main", "dockerize_main", "dockerfiles", "predict_image_name", "serve"]

DEVSERVER_DOC = """Serve the configured model with Flask's development server.

Uses the config named by PIPEFORGE_CONFIG, like 'gunicorn pipeforge.wsgi:app'
does; use gunicorn (see docs/serving.md) for anything but development.

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


def serve(args, config, *, flask_app=None) -> None:
    """Run ``config``'s app on Flask's server with the ``--host/--port/--debug`` of ``args``."""
    from .server import create_app

    port = args["--port"]
    if not str(port).isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--port must be a port number between 1 and 65535; got {port!r}")
    debug = _DEBUG_VALUES.get(str(args["--debug"]).strip().lower())
    if debug is None:
        raise UsageError(f"--debug must be 0 or 1; got {args['--debug']!r}")
    # run_script has started the background components (the model cache) already.
    app = create_app(config, flask_app=flask_app)
    app.run(host=args["--host"], port=int(port), debug=debug, use_reloader=False)


def devserver_main(argv: Sequence[str] | None = None) -> int:
    """``pf-devserver``: run the app on Flask's built-in server."""
    return run_script(DEVSERVER_DOC, bare_debug_means_one(argv), serve, mode="predict")


DOCKERIZE_DOC = """Write (and build) Docker images for a pipeforge application.

APP_DIR holds the config file (config.py, config.yaml, config.yml or
config.json) and optionally requirements.txt, a python_packages/ folder and a
setup.py/pyproject.toml. BASE_IMAGE must have pipeforge installed (e.g. the
image built from pipeforge's own Dockerfile). Two images result: IMAGE with
the application, and IMAGE-predict, which fits the model at build time and
serves it with gunicorn on port 8000.

Usage:
  pf-dockerize [options] APP_DIR BASE_IMAGE IMAGE

Options:
  -d --dockerfile-only   Write Dockerfile-app and Dockerfile-predict into
                         APP_DIR but do not build the images.
  --debug                Show tracebacks of errors.
  -h --help              Show this screen.
"""

CONFIG_NAMES = ("config.py", "config.yaml", "config.yml", "config.json")

_APP_TEMPLATE = """\
# Written by pf-dockerize: the application image (code and dependencies, no model).
FROM {base_image}

USER root
WORKDIR /app
COPY . /app
RUN if [ -f requirements.txt ]; then pip install --no-cache-dir -r requirements.txt; fi \\
 && if [ -d python_packages ]; then pip install --no-cache-dir python_packages/*; fi \\
 && if [ -f setup.py ] || [ -f pyproject.toml ]; then pip install --no-cache-dir .; fi \\
 && (id -u pipeforge >/dev/null 2>&1 || useradd --create-home --uid 10001 pipeforge) \\
 && chown -R pipeforge /app

USER pipeforge
ENV PIPEFORGE_CONFIG=/app/{config_name}
"""

_PREDICT_TEMPLATE = """\
# Written by pf-dockerize: fits the model at build time and serves it with gunicorn.
FROM {image}

ENV PIPEFORGE_CONFIG=/app/{config_name}
WORKDIR /app
RUN pf-fit

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/alive', timeout=4)" || exit 1
ENV GUNICORN_CMD_ARGS="--workers 2 --timeout 60 --graceful-timeout 30"
CMD ["gunicorn", "-b", "0.0.0.0:8000", "pipeforge.wsgi:app"]
"""


def predict_image_name(image: str) -> str:
    """``name:tag`` → ``name-predict:tag`` (the serving image's name)."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return f"{image[:colon]}-predict{image[colon:]}"
    return f"{image}-predict"


def _config_name(app_dir: str) -> str:
    for name in CONFIG_NAMES:
        if os.path.isfile(os.path.join(app_dir, name)):
            return name
    raise UsageError(
        f"APP_DIR {app_dir!r} has no config file; expected one of {', '.join(CONFIG_NAMES)}"
    )


def dockerfiles(app_dir: str, base_image: str, image: str) -> dict[str, str]:
    """The contents of ``Dockerfile-app`` and ``Dockerfile-predict`` for ``app_dir``."""
    config_name = _config_name(app_dir)
    return {
        "Dockerfile-app": _APP_TEMPLATE.format(base_image=base_image, config_name=config_name),
        "Dockerfile-predict": _PREDICT_TEMPLATE.format(image=image, config_name=config_name),
    }


def _docker_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def dockerize_main(argv: Sequence[str] | None = None) -> int:
    """``pf-dockerize``: write Dockerfile-app/-predict and build both images."""

    def body(args, config):
        app_dir = args["APP_DIR"]
        if not os.path.isdir(app_dir):
            raise UsageError(f"APP_DIR {app_dir!r} is not a directory")
        for option in ("BASE_IMAGE", "IMAGE"):
            if not args[option].strip() or any(c.isspace() for c in args[option]):
                raise UsageError(f"{option} must be an image name; got {args[option]!r}")
        files = dockerfiles(app_dir, args["BASE_IMAGE"], args["IMAGE"])
        for name, text in files.items():
            with open(os.path.join(app_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {os.path.join(app_dir, name)}")
        if args["--dockerfile-only"]:
            return 0
        if not _docker_available():
            raise PipeforgeError(
                "no Docker engine is available ('docker info' failed); start one, "
                "or pass -d to only write the Dockerfiles"
            )
        builds = (
            ("Dockerfile-app", args["IMAGE"]),
            ("Dockerfile-predict", predict_image_name(args["IMAGE"])),
        )
        for dockerfile, tag in builds:
            command = [
                "docker",
                "build",
                "-f",
                os.path.join(app_dir, dockerfile),
                "-t",
                tag,
                app_dir,
            ]
            print("running: " + " ".join(command), flush=True)
            if subprocess.run(command).returncode != 0:
                raise PipeforgeError(f"'docker build' of {tag} failed (see its output above)")
            print(f"built {tag}")
        return 0

    return run_script(DOCKERIZE_DOC, argv, body, needs_config=False)
