"""The one place that runs a script: parse arguments, load the config, map errors to exit codes.

Exit status: 0 on success, 2 for usage and configuration errors, 1 for any
other failure (130 on Ctrl-C). Errors are one line on stderr,
``<prog>: error: <message>``; ``--debug`` (or ``PIPEFORGE_DEBUG=1``) lets
the exception through for a full traceback.

This module must stay cheap to import (``pf-version``): the config and
everything heavy load inside :func:`run_script`.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, PipeforgeError, PredictError, UsageError

__all__ = [
    "run_script",
    "model_version_option",
    "number_option",
    "positive_int_option",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "STORE_ENTRIES",
    "existing_store",
]

#: the config entries of the commands that only read and change the model store
STORE_ENTRIES = ("model_persister",)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _prog(doc: str) -> str:
    """The program name: the first word after ``Usage:`` in the docopt text."""
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        if line.strip().lower().startswith("usage:"):
            rest = line.strip()[len("usage:") :].split()
            if rest:
                return rest[0]
            for following in lines[index + 1 :]:
                if following.strip():
                    return following.split()[0]
    return os.path.basename(sys.argv[0]) or "pipeforge"


def _wants_debug(argv: Sequence[str]) -> bool:
    # --debug, or --debug=1 of the scripts whose option takes a value (pf-devserver)
    flags = {"--debug", "--debug=1", "--debug=true", "--debug=yes"}
    return bool(flags.intersection(argv)) or os.environ.get("PIPEFORGE_DEBUG", "") not in ("", "0")


def _error(prog: str, message: str) -> None:
    message = " ".join(str(message).split("\n")).strip() or "unknown error"
    print(f"{prog}: error: {message}", file=sys.stderr)


def _known_options(doc: str) -> dict[str, bool]:
    """Every option the usage text names, mapped to whether it takes a value."""
    known: dict[str, bool] = {}
    in_usage = False
    for line in doc.splitlines():
        text = line.strip()
        if text.lower().startswith("usage:"):
            in_usage, text = True, text[len("usage:") :]
        elif not text:
            in_usage = False
        if text.startswith("-"):  # an option line: "-n --no-save   Fit the model ..."
            spec = re.split(r"\s{2,}", text)[0]
            names = re.findall(r"(?<![\w<-])--?[A-Za-z0-9][\w-]*", spec)
            takes_value = "<" in spec or re.search(r"[= ][A-Z][A-Z_]+\b", spec) is not None
            for name in names:
                known[name] = takes_value
        elif in_usage:
            for match in re.finditer(r"(?<![\w<-])(--?[A-Za-z0-9][\w-]*)(=<[^>]+>)?", text):
                known.setdefault(match.group(1), bool(match.group(2)))
    return known


def _usage_lines(doc: str) -> list[str]:
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        if line.strip().lower().startswith("usage:"):
            found = [line.strip()[len("usage:") :].strip()]
            for following in lines[index + 1 :]:
                if not following.strip():
                    break
                found.append(following.strip())
            return [" ".join(usage.split()) for usage in found if usage]
    return []


def _usage_problem(doc: str, argv: Sequence[str]) -> str:
    """Say in a few words why docopt rejected ``argv``: the first unknown option, a
    missing value, an unexpected or a missing argument."""
    known = _known_options(doc)
    longs = [name for name in known if name.startswith("--")]
    options: list[str] = []  # the option tokens with their values
    positionals: list[str] = []
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            positionals.extend(tokens[index:])
            break
        if token.startswith("--"):
            name, equals, _ = token.partition("=")
            matches = [name] if name in known else [n for n in longs if n.startswith(name)]
            if not matches:
                return f"unknown option {name}"
            if len(matches) > 1:
                return f"ambiguous option {name} (could be {', '.join(matches)})"
            option = matches[0]
            options.append(token)
            if known[option] and not equals:
                if index >= len(tokens):
                    return f"option {option} needs a value"
                options.append(tokens[index])
                index += 1
            elif equals and not known[option]:
                return f"option {option} takes no value"
        elif token.startswith("-") and token != "-":
            options.append(token)
            letters = token[1:]
            while letters:
                option, letters = "-" + letters[0], letters[1:]
                if option not in known:
                    return f"unknown option {option}"
                if known[option]:
                    if not letters:
                        if index >= len(tokens):
                            return f"option {option} needs a value"
                        options.append(tokens[index])
                        index += 1
                    break
        else:
            positionals.append(token)
    return _argument_problem(doc, options, positionals)


def _argument_problem(doc: str, options: list[str], positionals: list[str]) -> str:
    from docopt import DocoptExit, docopt

    def parse(args):
        try:
            return docopt(doc, argv=args, default_help=False)
        except DocoptExit:
            return None

    for keep in range(len(positionals) - 1, -1, -1):
        if parse(options + positionals[:keep]) is not None:
            return f"unexpected argument {positionals[keep]!r}"
    placeholder = "\0missing"
    for count in range(1, 4):
        parsed = parse(options + positionals + [placeholder] * count)
        if parsed is not None:
            missing = [
                name
                for name, value in parsed.items()
                if value == placeholder or (isinstance(value, list) and placeholder in value)
            ]
            return f"missing argument{'s' if len(missing) > 1 else ''} {' '.join(missing)}"
    what = (
        f"the arguments {' '.join(positionals)!r} do not fit"
        if positionals
        else "arguments are missing"
    )
    return f"{what}; usage: {' | '.join(_usage_lines(doc))}"


def _default_logging(config) -> Callable[[], None] | None:
    """Log pipeforge's INFO messages to stderr unless the config has a ``logging`` entry.

    Returns a function that undoes it, so in-process callers (tests) are left clean.
    """
    if config is not None and "logging" in config:
        return None
    logger = logging.getLogger("pipeforge")
    if logger.handlers:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return undo


def _locate(exc: ConfigError, config) -> ConfigError:
    """Name the config file(s) in a ConfigError raised by a component."""
    sources = getattr(config, "sources", None)
    if sources and exc.source is None:
        exc.located(source=", ".join(str(s) for s in sources))
    return exc


def _start_background(config, mode: str) -> list:
    """Start the config's background components a script needs; return them.

    Scheduled dataset loaders are always started (their data exists only
    once loaded); in ``predict`` mode everything is, so a long-running
    ``pf-stream`` picks up new models like the server does. Fitting scripts
    leave the model cache alone: it would only read a model they never use.
    """
    if config is None or not hasattr(config, "background"):
        return []
    from ..interfaces import DatasetLoader

    started = []
    try:
        for component in config.background():
            if mode == "predict" or isinstance(component, DatasetLoader):
                component.start()
                started.append(component)
    except BaseException:
        for component in started:
            component.stop(5.0)
        raise
    return started


def model_version_option(value: Any, option: str) -> int | None:
    """A command-line option or argument naming a model version (``None`` if not given)."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be an integer model version; got {value!r}") from None


def number_option(value: Any, option: str) -> float | None:
    """A command-line option that must be a number, such as a score (``None`` if not given)."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a number; got {value!r}") from None


def positive_int_option(value: Any, option: str) -> int | None:
    """A command-line option that must be a whole number of at least 1 (``None`` if not given)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(f"{option} must be a positive integer; got {value!r}")
    return number


def run_script(
    doc: str,
    argv: Sequence[str] | None,
    body: Callable[[Any, Any], int | None],
    *,
    needs_config: bool = True,
    mode: str = "fit",
    entries: Sequence[str] | None = None,
    short_lived: bool = False,
) -> int:
    """Run ``body(args, config)`` as a script and return its exit status.

    ``doc`` is the docopt usage text; ``config`` is ``None`` when
    ``needs_config`` is false. ``entries`` names the config entries the
    script uses: only those are built (before ``body`` runs, so their
    errors come first), the others only if ``body`` reads them; ``None``
    builds them all. ``body`` returns an exit status or ``None`` for
    success. Background components the script needs are started before
    ``body`` runs and stopped afterwards.

    ``short_lived``: the script only reads or edits the model store and
    exits, so the cyclic garbage collector is switched off for it -- its
    startup is mostly importing SQLAlchemy, whose thousands of new classes
    would otherwise trigger a collection pass every few hundred objects
    (about a tenth of the start time) to free nothing.
    """
    from docopt import DocoptExit, docopt

    if short_lived:
        gc.disable()
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = _prog(doc)
    debug = _wants_debug(argv)
    if "-h" in argv or "--help" in argv:
        print(doc.strip("\n"))
        return EXIT_OK
    try:
        args = docopt(doc, argv=argv, default_help=False)
    except DocoptExit:
        _error(prog, f"{_usage_problem(doc, argv)}; see {prog} -h")
        return EXIT_USAGE

    config = None
    undo_logging = None
    started: list = []
    try:
        if needs_config:
            from ..config import initialize_config

            config = initialize_config(__mode__=mode, lazy=entries is not None)
            if entries is not None:
                config.build(key for key in entries if key in config)
        undo_logging = _default_logging(config)
        started = _start_background(config, mode)
        status = body(args, config)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit handler
        return EXIT_OK if status is None else int(status)
    except (ConfigError, UsageError) as exc:
        if debug:
            raise
        if isinstance(exc, ConfigError):
            _locate(exc, config)
        _error(prog, str(exc))
        return EXIT_USAGE
    except PredictError as exc:
        if debug:
            raise
        _error(prog, exc.error_message)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (``pf-list | head``): stop quietly, as other command-line
        # tools do, and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (PipeforgeError, OSError) as exc:
        if debug:
            raise
        _error(prog, str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if debug:
            raise
        _error(prog, "interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        _error(prog, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILURE
    finally:
        for component in started:
            try:
                component.stop(5.0)
            except Exception:  # stopping must not hide the real outcome
                logging.getLogger(__name__).exception("stopping %r failed", component)
        if undo_logging is not None:
            undo_logging()


def existing_store(config: Mapping[str, Any]) -> Any:
    """The ``model_persister`` of ``config``, refusing an SQLite store whose file is not there.

    Commands that only read or change stored models (``pf-list``, ``pf-admin``)
    must not leave an empty database behind a typo in a path.
    """
    from ..errors import PersistenceError

    persister = config["model_persister"]
    path = _sqlite_file(persister, config)
    if path is not None and not os.path.exists(path):
        raise PersistenceError(f"no model store at {path} yet; pf-fit creates it")
    return persister


def _sqlite_file(persister: Any, config: Mapping[str, Any]) -> str | None:
    """The SQLite file of ``persister``'s store (or of the store it caches), if it has one."""
    from sqlalchemy.exc import ArgumentError

    from ..config.files import path_base, resolve_sqlite_url
    from ..persistence import Database

    store, seen = persister, 0
    while not isinstance(store, Database) and store is not None and seen < 5:
        store, seen = getattr(store, "impl", None), seen + 1
    if not isinstance(store, Database) or not isinstance(store.url, str):
        return None
    try:
        url = resolve_sqlite_url(store.url, path_base(config))
    except ArgumentError:  # the store says what is wrong with its URL
        return None
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else os.path.abspath(database)
