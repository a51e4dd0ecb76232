"""Reading config files: Python dict files, YAML and JSON.

Parsing is kept apart from processing so that every syntax problem is
reported against the file it is in, before any merging happens. YAML and
JSON reach the environment and their own folder through ``${...}``
(see docs/configuration.md); ``.py`` files get ``environ`` and ``here``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping

from .errors import ConfigError

__all__ = [
    "config_paths_from_env",
    "read_config_file",
    "format_path",
    "resolve_path",
    "resolve_sqlite_url",
]


def config_paths_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The config files named by ``PIPEFORGE_CONFIG`` (or ``PALLADIUM_CONFIG``)."""
    environ = os.environ if environ is None else environ
    value = environ.get("PIPEFORGE_CONFIG") or environ.get("PALLADIUM_CONFIG")
    if not value or not value.strip():
        raise ConfigError(
            "PIPEFORGE_CONFIG is not set; point it at your config file, "
            "e.g. export PIPEFORGE_CONFIG=config.py",
            source="environment",
        )
    return [part.strip() for part in value.split(",") if part.strip()]


def read_config_file(path: str) -> dict:
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

    try:
        return yaml.safe_load(text) or {}
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


def resolve_sqlite_url(url, here: str | None):
    """An SQLAlchemy URL whose relative SQLite file is taken from the config's folder.

    Raises SQLAlchemy's ``ArgumentError`` for a string that is no URL.
    """
    from sqlalchemy.engine import make_url

    url = make_url(url)
    database = url.database
    if (
        here
        and url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
    ):
        url = url.set(database=resolve_path(database, here))
    return url
