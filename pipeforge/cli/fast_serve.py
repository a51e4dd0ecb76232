"""``pf-serve``: the app on the fastest WSGI server installed, set up for this machine.

granian (``pip install 'pipeforge[fast]'``) when it is installed, else
gunicorn, each run in this process with the same behaviour:

- one worker process per core and several threads per worker, with
  adaptive batching on (``batching: True``) unless the config has its own
  ``batching`` entry, so the threads of a worker share model calls;
- the app, and with it the model, is loaded once here, then the collector's
  objects are frozen (:func:`gc.freeze`) and the workers forked from this
  process: they share the model's memory instead of each loading a copy. A
  worker started later (a crash, ``kill -HUP`` for a graceful reload) is
  forked from here as well, and this process keeps refreshing its model
  cache like the workers do, so a new worker starts with the current model;
- ``/metrics`` sums the workers (:mod:`pipeforge.server.metrics_dir`, with
  this process as the master), a worker that dies is replaced, a stop or
  reload lets requests in flight finish for ``--graceful-timeout`` seconds.

``gunicorn pipeforge.wsgi:app`` (each worker loads the app itself) keeps
working; ``--dry-run`` prints the equivalent command line of the server.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata, util
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .run import positive_int_option, run_script

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["SERVE_DOC", "ServeSettings", "serve_settings", "command_line", "serve_main"]

#: the WSGI target the equivalent command lines name
TARGET = "pipeforge.wsgi:app"
#: the environment variable whose options come before the command line's (e.g. in an image)
ARGS_VARIABLE = "PF_SERVE_ARGS"
SERVERS = ("granian", "gunicorn")

SERVE_DOC = """Serve the configured model on the fastest WSGI server installed.

granian (pip install 'pipeforge[fast]') when installed, else gunicorn, with
one worker per core, several threads per worker and adaptive batching (unless
the config has a 'batching' entry). The app is loaded once, in this process,
and the workers are forked from it, so they share the model's memory.
Options in the environment variable PF_SERVE_ARGS come before these.

Usage:
  pf-serve [options]

Options:
  -c --config=<files>       The config file(s), comma-separated; default: the
                            PIPEFORGE_CONFIG environment variable.
  -b --bind=<address>       HOST:PORT to listen on [default: 127.0.0.1:8000].
  -w --workers=<n>          Worker processes; default: one per core.
  --threads=<n>             Threads per worker; default: twice the cores,
                            at least 4 and at most 16.
  --server=<name>           granian, gunicorn, or auto: granian if it is
                            installed [default: auto].
  --timeout=<seconds>       gunicorn only: a worker silent this long is
                            killed and replaced [default: 60].
  --graceful-timeout=<s>    Seconds the requests in flight get to finish
                            when the server stops or reloads [default: 30].
  --no-preload              Each worker loads the app itself (a copy of the
                            model per worker).
  --dry-run                 Print the equivalent command line and the
                            settings; serve nothing.
  --debug                   Show tracebacks of errors.
  -h --help                 Show this screen.
"""


@dataclass(frozen=True)
class ServeSettings:
    """What ``pf-serve`` runs: the server and its settings."""

    server: str
    host: str
    port: int
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    preload: bool

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _installed(name: str) -> bool:
    return util.find_spec(name) is not None


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--bind must be HOST:PORT with a port from 0 to 65535; got {value!r}")
    return host, int(port)


def serve_settings(args: Mapping[str, Any], *, cores: int | None = None) -> ServeSettings:
    """The settings of ``pf-serve``'s options ``args`` on a machine of ``cores`` cores."""
    cores = cores or _cores()
    name = str(args["--server"]).strip().lower()
    if name == "auto":
        name = "granian" if _installed("granian") else "gunicorn"
    elif name not in SERVERS:
        raise UsageError(f"--server must be granian, gunicorn or auto; got {args['--server']!r}")
    elif not _installed(name):
        raise UsageError(
            f"{name} is not installed: pip install 'pipeforge[fast]', or use --server gunicorn"
        )
    host, port = _bind(str(args["--bind"]))
    workers = positive_int_option(args["--workers"], "--workers") or cores
    threads = positive_int_option(args["--threads"], "--threads") or min(16, max(4, 2 * cores))
    timeout = positive_int_option(args["--timeout"], "--timeout") or 60
    graceful = positive_int_option(args["--graceful-timeout"], "--graceful-timeout") or 30
    return ServeSettings(
        server=name,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        timeout=timeout,
        graceful_timeout=graceful,
        preload=not args["--no-preload"],
    )


#: gunicorn's limits on request lines and headers, raised above pipeforge's own (docs/serving.md)
_GUNICORN_LIMITS = {
    "limit_request_line": 8190,
    "limit_request_fields": 200,
    "limit_request_field_size": 16380,
}


def _gunicorn_options(settings: ServeSettings) -> dict[str, Any]:
    return {
        "bind": [f"{settings.host}:{settings.port}"],
        "workers": settings.workers,
        "worker_class": "gthread" if settings.threads > 1 else "sync",
        "threads": settings.threads,
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "reuse_port": True,  # each worker its own socket: the kernel spreads the connections
        "preload_app": settings.preload,
        "control_socket_disable": True,
        **_GUNICORN_LIMITS,
    }


def _granian_options(settings: ServeSettings) -> dict[str, Any]:
    return {
        "address": settings.host,
        "port": settings.port,
        "interface": "wsgi",
        "workers": settings.workers,
        "blocking_threads": settings.threads,
        "respawn_failed_workers": True,  # like gunicorn: a worker that dies is replaced
        "workers_kill_timeout": settings.graceful_timeout,
        "log_dictconfig": _GRANIAN_LOG_TO_STDERR,
    }


#: granian logs to stdout by default; a server's log goes to stderr, as gunicorn's does
_GRANIAN_LOG_TO_STDERR = {
    "handlers": {
        handler: {
            "formatter": formatter,
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        }
        for handler, formatter in (("console", "generic"), ("access", "access"))
    }
}


def command_line(settings: ServeSettings) -> list[str]:
    """The server's own command line that serves like ``settings`` (but loads the app per worker)."""
    if settings.server == "granian":
        options = _granian_options(settings)
        return [
            "granian",
            "--interface=wsgi",
            f"--host={options['address']}",
            f"--port={options['port']}",
            f"--workers={options['workers']}",
            f"--blocking-threads={options['blocking_threads']}",
            "--respawn-failed-workers",
            f"--workers-kill-timeout={options['workers_kill_timeout']}",
            TARGET,
        ]
    options = _gunicorn_options(settings)
    line = ["gunicorn", f"--bind={options['bind'][0]}", f"--workers={options['workers']}"]
    if settings.threads > 1:
        line += ["--worker-class=gthread", f"--threads={settings.threads}"]
    line += [
        f"--timeout={options['timeout']}",
        f"--graceful-timeout={options['graceful_timeout']}",
        "--reuse-port",
        "--no-control-socket",
        # gunicorn's own spelling of these flags (as pf-dockerize's GUNICORN_LIMITS)
        "--limit-request-line",
        str(_GUNICORN_LIMITS["limit_request_line"]),
        "--limit-request-fields",
        str(_GUNICORN_LIMITS["limit_request_fields"]),
        "--limit-request-field_size",
        str(_GUNICORN_LIMITS["limit_request_field_size"]),
    ]
    if settings.preload:
        line.append("--preload")
    return [*line, TARGET]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _describe(settings: ServeSettings, batching: str) -> str:
    loaded = (
        "the app loaded once before the workers fork"
        if settings.preload
        else "each worker loads the app"
    )
    return (
        f"serving on {settings.url} with {settings.server} {_version(settings.server)}: "
        f"{settings.workers} worker(s) x {settings.threads} thread(s), batching {batching}, {loaded}"
    )


def _load_app(settings: ServeSettings, master: int) -> tuple[Flask, str]:
    """Load the config and build the app for the workers of ``master``; say how batching was set."""
    from ..config import initialize_config
    from ..server import metrics
    from ..server.app import create_app

    config = initialize_config(__mode__="predict", lazy=True)
    batching = "as the config says"
    if "batching" not in config:
        on = settings.threads > 1
        config["batching"] = on
        batching = "on" if on else "off (one thread per worker)"
    if metrics.settings(config) is not None:
        metrics.prepare_multiprocess(master=master)  # before prometheus_client's import
    return create_app(config, start_background=True), batching


def _run_granian(settings: ServeSettings, load: Callable[[], Any]) -> None:
    from granian import Granian

    # granian starts its workers with multiprocessing's default method; "fork"
    # (Linux's default before Python 3.14) is what lets them share the app (and
    # takes the loader below as it is, where "spawn" would have to pickle it).
    multiprocessing.set_start_method("fork", force=True)
    server = Granian(TARGET, **_granian_options(settings))
    server.serve(target_loader=lambda _target: load(), wrap_loader=True)


def _run_gunicorn(settings: ServeSettings, load: Callable[[], Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class PipeforgeApplication(BaseApplication):  # gunicorn is untyped
        def load_config(self) -> None:
            for name, value in _gunicorn_options(settings).items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return load()

    PipeforgeApplication().run()


def _serve(args: Mapping[str, Any], config: Any) -> int | None:
    settings = serve_settings(args)
    if args["--dry-run"]:
        print(shlex.join(command_line(settings)))
        batching = "on unless the config has a batching entry" if settings.threads > 1 else "off"
        print(f"# {_describe(settings, batching)}")
        return None
    if args["--config"]:
        os.environ["PIPEFORGE_CONFIG"] = args["--config"]
    if os.getcwd() not in sys.path:  # the config's modules import from here, as under gunicorn
        sys.path.insert(0, os.getcwd())
    master = os.getpid()
    app: Any = None
    if settings.preload:
        app, batching = _load_app(settings, master)
        gc.collect()
        gc.freeze()  # the collector leaves the shared objects alone: their pages stay shared
        load: Callable[[], Any] = lambda: app  # noqa: E731
    else:
        batching = "as the config says"

        def load() -> Any:
            return _load_app(settings, master)[0]

    print(f"pf-serve: {_describe(settings, batching)}", file=sys.stderr, flush=True)
    try:
        if settings.server == "granian":
            _run_granian(settings, load)
        else:
            _run_gunicorn(settings, load)
    finally:
        if app is not None and os.getpid() == master:  # a gunicorn worker unwinds through here
            app.extensions["pipeforge"].stop()
    return None


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``pf-serve``: run the app on granian or gunicorn with settings for this machine."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_script(SERVE_DOC, _with_environment(argv), _serve, needs_config=False)


def _with_environment(argv: list[str]) -> list[str]:
    """``argv`` over the options of ``PF_SERVE_ARGS`` (the command line wins)."""
    from docopt import DocoptExit, docopt

    extra = shlex.split(os.environ.get(ARGS_VARIABLE, ""))
    if not extra or "-h" in argv or "--help" in argv:
        return argv
    try:
        defaults, given = docopt(SERVE_DOC, argv=[]), docopt(SERVE_DOC, argv=argv)
        from_environment = docopt(SERVE_DOC, argv=extra)
    except DocoptExit:
        return [*extra, *argv]  # run_script names the problem
    merged = []
    for option, default in defaults.items():
        value = given[option] if given[option] != default else from_environment[option]
        if value is True:
            merged.append(option)
        elif value != default and value not in (False, None):
            merged.append(f"{option}={value}")
    return merged
