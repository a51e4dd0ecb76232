"""``pf-dockerize``: the files that put an application into container images, and the build.

Four files are written into the application folder: ``Dockerfile-app`` and
``Dockerfile-predict``, a ``.dockerignore`` that keeps the local model store,
results, virtual environments and caches out of the images, and
``requirements-lock.txt``, the exact versions of the dependencies installed
where pf-dockerize runs (so an image built next month fits the same
libraries). Each file begins with a line holding a checksum of the rest: a
file edited by hand no longer matches it and is kept, not overwritten.

A build needs a working engine (``docker``, or ``podman``); it is looked for
before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence

from ..errors import PipeforgeError, UsageError
from .lockfile import requirements_lock

__all__ = [
    "DOCKERIZE_DOC",
    "GUNICORN_LIMITS",
    "dockerfiles",
    "dockerignore",
    "requirements_lock",
    "predict_image_name",
    "find_engine",
    "write_generated",
    "dockerize",
]

DOCKERIZE_DOC = """Write (and build) container images for a pipeforge application.

APP_DIR holds the config file (config.py, config.yaml, config.yml or
config.json) and optionally requirements.txt, a python_packages/ folder and a
setup.py/pyproject.toml. BASE_IMAGE must have pipeforge installed (e.g. the
image built from pipeforge's own Dockerfile). Two images result: IMAGE with
the application, and IMAGE-predict, which fits the model at build time and
serves it with pf-serve on port 8000.

Besides Dockerfile-app and Dockerfile-predict, APP_DIR gets a .dockerignore
(the local model store, results, virtual environments and caches stay out of
the images) and requirements-lock.txt (the exact versions of the dependencies
installed here, which the image installs). A file edited by hand is kept,
not overwritten, unless --force is given.

Usage:
  pf-dockerize [options] APP_DIR BASE_IMAGE IMAGE

Options:
  -d --dockerfile-only    Write the files into APP_DIR; build nothing.
  --engine=<command>      The container engine to build with, e.g. 'docker' or
                          'podman --runtime=runc'; default: docker, or podman
                          if docker does not work.
  --build-options=<opts>  More options for '<engine> build', e.g.
                          '--network=host'.
  --force                 Overwrite generated files even if edited by hand.
  --debug                 Show tracebacks of errors.
  -h --help               Show this screen.
"""

CONFIG_NAMES = ("config.py", "config.yaml", "config.yml", "config.json")
ENGINES = ("docker", "podman")

_HEADER = "# Written by pf-dockerize, which keeps this file once edited (checksum {checksum})"
_HEADER_RE = re.compile(r"# Written by pf-dockerize\b.*\(checksum ([0-9a-f]{16})\)")

_APP_TEMPLATE = """\
FROM {base_image}

USER root
# The application's user owns /app: pf-fit in the predict image writes the model store there.
RUN (id -u pipeforge >/dev/null 2>&1 || useradd --create-home --uid 10001 pipeforge) \\
 && mkdir -p /app && chown pipeforge /app
WORKDIR /app
# The exact versions of the dependencies where pf-dockerize ran (a layer of its own, so
# rebuilding after a change to the application does not install them again).
COPY requirements-lock.txt /app/
RUN pip install --no-cache-dir -r requirements-lock.txt
COPY --chown=pipeforge . /app
RUN if [ -f requirements.txt ]; then pip install --no-cache-dir -c requirements-lock.txt -r requirements.txt; fi \\
 && if [ -d python_packages ]; then pip install --no-cache-dir -c requirements-lock.txt python_packages/*; fi \\
 && if [ -f setup.py ] || [ -f pyproject.toml ]; then pip install --no-cache-dir -c requirements-lock.txt .; fi

USER pipeforge
ENV PIPEFORGE_CONFIG=/app/{config_name}
"""

_PREDICT_TEMPLATE = """\
# Fits the model at build time and serves it with {server_name}.
FROM {image}

ENV PIPEFORGE_CONFIG=/app/{config_name}
WORKDIR /app
RUN pf-fit

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/alive', timeout=4)" || exit 1
{serve}"""

#: how the predict image serves, by server: pf-serve (pipeforge's images), gunicorn (Palladium's)
_SERVE = {
    "pf-serve": """\
# pf-serve's settings (one worker per core by default); a container can set its own with
# -e PF_SERVE_ARGS=... Under gunicorn, pf-serve raises gunicorn's limits on request lines and
# headers ({limits}) so that pipeforge answers those over its own limits with its JSON error body
# (docs/serving.md).
ENV PF_SERVE_ARGS="--bind 0.0.0.0:8000 --timeout 60 --graceful-timeout 30"
CMD ["pf-serve"]
""",
    "gunicorn": """\
# gunicorn's settings; a container can set its own with -e GUNICORN_CMD_ARGS=...
ENV GUNICORN_CMD_ARGS="--bind 0.0.0.0:8000 --workers 2 --timeout 60 --graceful-timeout 30"
# Request lines and headers up to these sizes reach pipeforge, which answers those over its
# own limits with its JSON error body (docs/serving.md); gunicorn refuses larger ones itself.
CMD ["gunicorn", {limits}, "pipeforge.wsgi:app"]
""",
}
_SERVER_NAMES = {"pf-serve": "pf-serve (granian, or gunicorn without it)", "gunicorn": "gunicorn"}

#: gunicorn's limits on request lines and headers, raised above pipeforge's own (docs/serving.md)
GUNICORN_LIMITS = (
    "--limit-request-line",
    "8190",
    "--limit-request-fields",
    "200",
    "--limit-request-field_size",
    "16380",
)

_IGNORED = """\
# What the images must not contain: the local model store (the predict image fits
# its own), results, virtual environments, caches and version control.
.git
**/.venv
**/venv
**/__pycache__
**/*.py[cod]
**/.pytest_cache
**/.ruff_cache
**/.mypy_cache
**/.hypothesis
**/.ipynb_checkpoints
**/*.egg-info
**/*.db
**/*.db-journal
**/*.db-wal
**/*.sqlite
**/*.sqlite3
**/*.pickle
**/*.pickle.json
**/results*.csv
Dockerfile-app
Dockerfile-predict
.dockerignore
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


def dockerfiles(
    app_dir: str, base_image: str, image: str, server: str = "pf-serve"
) -> dict[str, str]:
    """The contents of ``Dockerfile-app`` and ``Dockerfile-predict`` for ``app_dir``.

    ``server``: ``pf-serve`` (pipeforge's images) or ``gunicorn`` (Palladium's,
    which served ``palladium.wsgi:app`` with gunicorn).
    """
    config_name = _config_name(app_dir)
    limits = {
        "pf-serve": " ".join(GUNICORN_LIMITS),
        "gunicorn": ", ".join(f'"{arg}"' for arg in GUNICORN_LIMITS),
    }[server]
    return {
        "Dockerfile-app": _APP_TEMPLATE.format(base_image=base_image, config_name=config_name),
        "Dockerfile-predict": _PREDICT_TEMPLATE.format(
            image=image,
            config_name=config_name,
            server_name=_SERVER_NAMES[server],
            serve=_SERVE[server].format(limits=limits),
        ),
    }


# -- .dockerignore -------------------------------------------------------------


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\0"
    except OSError:
        return False


def _local_state(app_dir: str) -> list[str]:
    """Virtual environments and SQLite files in ``app_dir`` whatever their names."""
    found = []
    for folder, dirs, files in os.walk(app_dir):
        relative = os.path.relpath(folder, app_dir)
        if "pyvenv.cfg" in files and relative != ".":
            found.append(relative.replace(os.sep, "/"))
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__", "node_modules"))
        for name in sorted(files):
            if _is_sqlite(os.path.join(folder, name)):
                found.append(os.path.normpath(os.path.join(relative, name)).replace(os.sep, "/"))
    return found


def dockerignore(app_dir: str) -> str:
    """The ``.dockerignore`` for ``app_dir``: the usual suspects plus what is found there."""
    text = _IGNORED
    found = [path for path in _local_state(app_dir) if not _ignored_anyway(path)]
    if found:
        text += "# Found in the folder: SQLite files and virtual environments.\n"
        text += "".join(f"{path}\n" for path in found)
    return text


def _ignored_anyway(path: str) -> bool:
    suffixes = (".db", ".sqlite", ".sqlite3")
    name = path.rsplit("/", 1)[-1]
    return name.endswith(suffixes) or name in (".venv", "venv")


# -- writing without overwriting what a person changed ---------------------------


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _stamped(body: str) -> str:
    return _HEADER.format(checksum=_checksum(body)) + "\n" + body


def _edited(text: str) -> bool:
    """Whether an existing file was not written by pf-dockerize or was changed since."""
    first, _, body = text.partition("\n")
    match = _HEADER_RE.fullmatch(first)
    return match is None or match.group(1) != _checksum(body)


def write_generated(path: str, body: str, force: bool) -> str:
    """Write a generated file unless it was edited by hand; say what happened."""
    text = _stamped(body)
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = None
    if old == text:
        return f"{path} is up to date"
    if old is not None and _edited(old):
        if not force:
            return f"kept {path}: it was edited by hand (--force overwrites it)"
        verb = "overwrote the edited"
    else:
        verb = "updated" if old is not None else "wrote"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return f"{verb} {path}"


# -- the engine ------------------------------------------------------------------


def _works(command: list[str]) -> str | None:
    """``None`` if ``<command> info`` succeeds, else why not."""
    if shutil.which(command[0]) is None:
        return f"'{command[0]}' is not installed"
    try:
        result = subprocess.run(
            [*command, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'{shlex.join([*command, 'info'])}' failed: {exc}"
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        return f"'{shlex.join([*command, 'info'])}' failed" + (f": {lines[-1]}" if lines else "")
    return None


def find_engine(engine: str | None = None) -> list[str]:
    """The engine command to build with: ``engine`` (split like a shell), or docker, or podman."""
    if engine is not None:
        command = shlex.split(engine)
        if not command:
            raise UsageError("--engine must name a command such as 'docker' or 'podman'")
        problem = _works(command)
        if problem is not None:
            raise PipeforgeError(
                f"the container engine does not work: {problem}; pass -d to only write the files"
            )
        return command
    problems = []
    for name in ENGINES:
        problem = _works([name])
        if problem is None:
            return [name]
        problems.append(problem)
    raise PipeforgeError(
        f"no container engine works ({'; '.join(problems)}); start Docker or install podman, "
        "name one with --engine, or pass -d to only write the files"
    )


def dockerize(
    app_dir: str,
    base_image: str,
    image: str,
    *,
    build: bool = True,
    engine: str | None = None,
    build_options: str | None = None,
    force: bool = False,
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """Write the image files into ``app_dir`` and (with ``build``) build both images.

    Returns what it did, one line per file and image, and tells ``say`` each
    line as it happens (a build takes minutes). The engine is checked before
    a file is written.
    """
    said: list[str] = []

    def tell(line: str) -> None:
        said.append(line)
        if say is not None:
            say(line)

    if not os.path.isdir(app_dir):
        raise UsageError(f"APP_DIR {app_dir!r} is not a directory")
    for option, value in (("BASE_IMAGE", base_image), ("IMAGE", image)):
        if not value.strip() or any(c.isspace() for c in value):
            raise UsageError(f"{option} must be an image name; got {value!r}")
    files = dockerfiles(app_dir, base_image, image)
    command = find_engine(engine) if build else []
    files[".dockerignore"] = dockerignore(app_dir)
    files["requirements-lock.txt"] = requirements_lock(app_dir)
    for name, text in files.items():
        tell(write_generated(os.path.join(app_dir, name), text, force))
    if not build:
        return said
    options = shlex.split(build_options or "")
    builds = (("Dockerfile-app", image), ("Dockerfile-predict", predict_image_name(image)))
    for dockerfile, tag in builds:
        path = os.path.join(app_dir, dockerfile)
        argv = [*command, "build", *options, "-f", path, "-t", tag, app_dir]
        tell("running: " + shlex.join(argv))
        if subprocess.run(argv).returncode != 0:
            raise PipeforgeError(f"building {tag} failed (see the output of the build above)")
        tell(f"built {tag}")
    return said


def dockerize_main(argv: Sequence[str] | None = None) -> int:
    """``pf-dockerize``: write the image files and build both images."""
    from .run import run_script

    def body(args, config):
        dockerize(
            args["APP_DIR"],
            args["BASE_IMAGE"],
            args["IMAGE"],
            build=not args["--dockerfile-only"],
            engine=args["--engine"],
            build_options=args["--build-options"],
            force=args["--force"],
            say=lambda line: print(line, flush=True),
        )

    return run_script(DOCKERIZE_DOC, argv, body, needs_config=False)
