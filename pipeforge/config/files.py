"""Reading config files: Python dict files, YAML and JSON.

Parsing is kept apart from processing so that every syntax problem is
reported against the file it is in, before any merging happens. YAML and
JSON reach the environment and their own folder through ``${...}``
(see docs/configuration.md); ``.py`` files get ``environ`` and ``here``.

pipeforge 0.1 called this module ``pipeforge.config_files``; that name stays
an alias of this one (pipeforge/moved_modules.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "ConfigPaths",
    "config_paths_from_env",
    "path_base",
    "relative_to_folder",
    "read_config_file",
    "format_path",
    "resolve_path",
    "resolve_sqlite_url",
]

logger = logging.getLogger(__name__)


# Where a config is looked for when no variable names one, in this order (relative to the
# current directory): pipeforge's own names, then Palladium's.
PIPEFORGE_DEFAULT_LOCATIONS = tuple(
    os.path.join(folder, f"pipeforge-config{ext}")
    for folder in ("", "etc")
    for ext in (".py", ".yaml", ".yml", ".json")
)
PALLADIUM_DEFAULT_LOCATIONS = ("palladium-config.py", os.path.join("etc", "palladium-config.py"))

# The values of the ``__relative_to__`` marker: the folder relative paths resolve against.
RELATIVE_TO_CONFIG = "config"  # pipeforge's rule: the first config file's folder
RELATIVE_TO_CWD = "cwd"  # Palladium's rule: the current directory


class ConfigPaths(list):
    """The config files to load, and which rule their relative paths follow by default.

    ``relative_to`` is ``"cwd"`` for files named by ``PALLADIUM_CONFIG`` or
    found at Palladium's default places, ``"config"`` otherwise; a
    ``__relative_to__`` entry in the files overrides it.
    """

    def __init__(self, paths: Iterable[str], relative_to: str = RELATIVE_TO_CONFIG):
        super().__init__(paths)
        self.relative_to = relative_to


def config_paths_from_env(environ: Mapping[str, str] | None = None) -> ConfigPaths:
    """The config files named by ``PIPEFORGE_CONFIG`` (or ``PALLADIUM_CONFIG``).

    With neither variable set, the first file that exists at the default places
    (``pipeforge-config.py`` ... ``etc/palladium-config.py``) is used.
    """
    environ = os.environ if environ is None else environ
    for name, rule in (
        ("PIPEFORGE_CONFIG", RELATIVE_TO_CONFIG),
        ("PALLADIUM_CONFIG", RELATIVE_TO_CWD),
    ):
        value = environ.get(name)
        if value and value.strip():
            return ConfigPaths([p.strip() for p in value.split(",") if p.strip()], rule)
    for path in PIPEFORGE_DEFAULT_LOCATIONS + PALLADIUM_DEFAULT_LOCATIONS:
        if os.path.isfile(path):
            rule = RELATIVE_TO_CWD if path in PALLADIUM_DEFAULT_LOCATIONS else RELATIVE_TO_CONFIG
            logger.info("Using the configuration at %s (no PIPEFORGE_CONFIG set)", path)
            return ConfigPaths([path], rule)
    raise ConfigError(
        "PIPEFORGE_CONFIG is not set and there is no pipeforge-config.py or palladium-config.py "
        "here or in etc/; point it at your config file, e.g. export PIPEFORGE_CONFIG=config.py",
        source="environment",
    )


def relative_to_folder(
    rule: str | None, config_folder: str | None, source: str | None = None
) -> str | None:
    """The folder relative paths resolve against under ``rule`` (``"config"`` or ``"cwd"``).

    The current directory is taken now, when the config is loaded, so a later
    ``chdir`` does not move the files a config names.
    """
    if rule in (None, RELATIVE_TO_CONFIG):
        return config_folder
    if rule == RELATIVE_TO_CWD:
        return os.getcwd()
    raise ConfigError(
        f"must be {RELATIVE_TO_CONFIG!r} (paths relative to the config file's folder) or "
        f"{RELATIVE_TO_CWD!r} (relative to the current directory, as in Palladium); got {rule!r}",
        source=source,
        key="__relative_to__",
    )


def path_base(config: Mapping[str, Any]) -> str | None:
    """The folder a component resolves ``config``'s relative paths against (see :func:`relative_to_folder`)."""
    return getattr(config, "path_base", getattr(config, "here", None))


def read_config_file(path: str) -> dict[str, Any]:
    """Parse one config file into a plain dict (nothing processed yet)."""
    here = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", source=path) from exc

    ext = os.path.splitext(path)[1].lower()
    if ext == ".py":
        data = _read_python(text, path, here)
    elif ext in (".yaml", ".yml"):
        data = _read_yaml(text, path)
    elif ext == ".json":
        data = _read_json(text, path)
    else:
        raise ConfigError(
            f"unknown config file type {ext or '(none)'!r}; use .py, .yaml, .yml or .json",
            source=path,
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"a config file must hold a dict at the top; got {type(data).__name__}", source=path
        )
    if ext != ".py":
        data = _interpolate(data, (), path, here)
    return data


def _read_python(text: str, path: str, here: str):
    try:
        code = compile(text, path, "eval")
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else path
        raise ConfigError(f"syntax error: {exc.msg}", source=where) from exc
    try:
        return eval(
            code, {"environ": os.environ, "here": here}
        )  # trusted user code, like gunicorn.conf.py
    except KeyError as exc:
        raise ConfigError(f"environment variable {exc.args[0]!r} is not set", source=path) from exc
    except Exception as exc:
        raise ConfigError(
            f"evaluating the file failed: {type(exc).__name__}: {exc}", source=path
        ) from exc


def _read_yaml(text: str, path: str):
    import yaml

    # libyaml's loader when PyYAML was built with it: the same safe subset, parsed in C.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error: {problem}", source=where) from exc


def _read_json(text: str, path: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"JSON syntax error: {exc.msg} (column {exc.colno})", source=f"{path}:{exc.lineno}"
        ) from exc


# ${NAME}, ${NAME:-default}, ${here}; $${ is a literal ${
_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node, path: tuple, source: str, here: str):
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``${here}`` in YAML/JSON strings."""
    if isinstance(node, dict):
        return {k: _interpolate(v, path + (str(k),), source, here) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, path + (f"[{i}]",), source, here) for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node

    def substitute(match):
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name == "here":
            return here
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name!r} is not set (write ${{{name}:-default}} to give a default)",
            source=source,
            key=format_path(path),
        )

    whole = _VARIABLE.fullmatch(node)
    value = _VARIABLE.sub(substitute, node)
    if whole and whole.group(0) != "$${":
        return _scalar(value)
    return value


def _scalar(text: str):
    """A value standing alone, like ``${PORT:-5000}``, keeps its YAML type (5000, true, null)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def format_path(path: Iterable) -> str:
    """Render a key path as ``a.b[0].c``."""
    out = ""
    for part in path:
        part = str(part)
        out += part if part.startswith("[") or not out else "." + part
    return out


def resolve_path(path: str, here: str | None) -> str:
    """A relative file ``path`` taken from the config's folder ``here`` (URLs stay as they are)."""
    if not here or "://" in path or os.path.isabs(path):
        return path
    return os.path.join(here, path)


def resolve_sqlite_url(url: str | URL, here: str | None) -> URL:
    """An SQLAlchemy URL whose relative SQLite file is taken from the config's folder.

    Raises SQLAlchemy's ``ArgumentError`` for a string that is no URL, and
    :class:`ConfigError` naming the file for an SQLite file in a folder that
    does not exist (SQLite would only say "unable to open database file").
    """
    from sqlalchemy.engine import make_url

    url = make_url(url)
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        if here:
            url = url.set(database=resolve_path(database, here))
        path = os.path.abspath(url.database or "")
        if not os.path.isdir(os.path.dirname(path)):
            raise ConfigError(
                f"the SQLite file {path} cannot be opened: its folder "
                f"{os.path.dirname(path)} does not exist"
            )
    return url
