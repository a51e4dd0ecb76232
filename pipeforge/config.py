"""Loading, merging and processing configuration files.

A configuration is one or more files (``.py`` dict expressions, YAML or
JSON) merged top-level key by key, later files winning. Processing then runs
in a fixed order, each phase over the whole tree:

1. ``__copy__`` (with ``__default__``): deep copies of other entries;
2. ``__python__``: statements run with the config as ``C``;
3. ``__factory__`` / ``!``: components built depth-first, keyword
   arguments first; ``__mode__`` on a component keeps it only in that mode;
4. ``initialize_component(config)`` on every component that has it.

Phases 1 and 2 always run over the whole config; by default phases 3 and 4
do too. With ``lazy=True`` an entry is built (and its components
initialized) on first access instead, so a script that only lists the
stored models never imports scikit-learn to build the ``model`` entry.

Every problem is raised as a :class:`~pipeforge.errors.ConfigError` that
names the file, the key path and what is wrong.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from .config_files import config_paths_from_env, read_config_file, relative_to_folder
from .config_files import format_path as _format_path
from .errors import ConfigError, MissingKeyError
from .process_store import ProcessStore

__all__ = ["Config", "load_config", "get_config", "initialize_config", "config_paths_from_env"]

log = logging.getLogger(__name__)

FACTORY_KEYS = ("__factory__", "!")
_DROPPED = object()  # a component whose __mode__ does not match is left out


class Config(dict):
    """The processed configuration: a dict of entries and built components.

    Besides the entries it knows where it came from (``sources``, ``here``),
    the ``mode`` it was built for, and owns the ``process_store`` its
    components share.
    """

    def __init__(self, *args, sources: Iterable[str] = (), mode: str | None = None, **kw):
        super().__init__(*args, **kw)
        self.sources = list(sources)
        self.here = os.path.dirname(os.path.abspath(self.sources[0])) if self.sources else None
        self.mode = mode
        self.process_store = ProcessStore()
        self.components: list[tuple[str, Any]] = []
        self._unbuilt: set[str] = set()  # entries whose components are not built yet
        self._builder: _Builder | None = None
        self._build_lock = threading.RLock()

    def __getitem__(self, key):
        if key in self._unbuilt:
            self._build_entry(key)
        try:
            return super().__getitem__(key)
        except KeyError:
            raise MissingKeyError(
                f"missing required entry {key!r}; add it to the configuration",
                source=", ".join(self.sources) or None,
            ) from None

    def require(self, key: str):
        """Return the entry ``key`` or raise a ConfigError that names the files."""
        return self[key]

    # Reading an entry builds it; so do the methods that hand out every value.
    def get(self, key, default=None):
        if key in self._unbuilt:
            self._build_entry(key)
        return super().get(key, default)

    def __iter__(self):  # also makes dict(config) and {**config} go through __getitem__
        return super().__iter__()

    def values(self):
        self.build()
        return super().values()

    def items(self):
        self.build()
        return super().items()

    def copy(self) -> dict:
        self.build()
        return dict(super().items())

    def pop(self, key, *default):
        if key in self._unbuilt:
            self._build_entry(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def __setitem__(self, key, value) -> None:
        self._unbuilt.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self._unbuilt.discard(key)
        super().__delitem__(key)

    def update(self, *args, **kw) -> None:
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def build(self, keys: Iterable[str] | None = None) -> None:
        """Build the entries ``keys`` (all entries when ``None``) not built yet.

        Each entry's components are created and then initialized; the first
        problem raises a :class:`ConfigError` naming file and key. Keys the
        config does not have are skipped: reading them raises later.
        """
        for key in list(self) if keys is None else list(keys):
            if key in self._unbuilt:
                self._build_entry(key)

    def _build_entry(self, key: str) -> None:
        with self._build_lock:
            if key not in self._unbuilt or self._builder is None:
                return
            first = len(self.components)
            try:
                value = self._builder.build(super().__getitem__(key), (key,))
            except BaseException:
                del self.components[first:]
                raise
            self._unbuilt.discard(key)
            if value is _DROPPED:
                super().__delitem__(key)
            else:
                super().__setitem__(key, value)
            self._builder.initialize(self.components[first:])

    def background(self) -> list:
        """The components that run periodic work in a thread (see ``interfaces.Background``)."""
        from .interfaces import Background

        seen, found = set(), []
        for _path, component in self.components:
            if isinstance(component, Background) and id(component) not in seen:
                seen.add(id(component))
                found.append(component)
        return found

    def start(self) -> None:
        """Start every background component; only scripts and the server call this."""
        for component in self.background():
            component.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        for component in self.background():
            component.stop(timeout)


# -- merging and __copy__ ----------------------------------------------------


class _CopyResolver:
    """Resolves ``__copy__`` against the merged layers of the config files.

    A copy of an entry's own path (``'model': {'__copy__': 'model', ...}``)
    takes the definition of an earlier file, so a later file can extend it.
    """

    def __init__(self, layers: dict[str, list[tuple[str, Any]]]):
        self.layers = layers
        self.resolving: list[tuple] = []

    def entry(self, key: str):
        source, raw = self.layers[key][-1]
        return self.walk(raw, (key,), len(self.layers[key]) - 1, source)

    def walk(self, node, path: tuple, layer: int, source: str):
        if isinstance(node, dict):
            if "__copy__" in node:
                return self.copy(node, path, layer, source)
            return {k: self.walk(v, path + (k,), layer, source) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            items = [self.walk(v, path + (f"[{i}]",), layer, source) for i, v in enumerate(node)]
            return items if isinstance(node, list) else type(node)(items)
        return node

    def copy(self, node: dict, path: tuple, layer: int, source: str):
        target = node["__copy__"]
        where = _format_path(path) + ".__copy__"
        if not isinstance(target, str) or not target:
            raise ConfigError(
                f"__copy__ must be a dotted path like 'model' or 'a.b'; got {target!r}",
                source=source,
                key=where,
            )
        parts = tuple(target.split("."))
        self_reference = path[: len(parts)] == parts
        target_layer = layer - 1 if self_reference else None
        try:
            value = self.lookup(parts, target_layer, source, where)
        except LookupError:
            if "__default__" not in node:
                hint = (
                    " (a copy of itself needs an earlier config file that defines it)"
                    if self_reference
                    else ""
                )
                raise ConfigError(
                    f"__copy__ target {target!r} not found{hint}", source=source, key=where
                ) from None
            value = self.walk(node["__default__"], path + ("__default__",), layer, source)
        value = copy.deepcopy(value)
        overrides = {
            k: self.walk(v, path + (k,), layer, source)
            for k, v in node.items()
            if k not in ("__copy__", "__default__")
        }
        if overrides:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"__copy__ target {target!r} is a {type(value).__name__}, so it cannot take extra keys "
                    f"({', '.join(map(repr, overrides))})",
                    source=source,
                    key=where,
                )
            value.update(overrides)
        return value

    def lookup(self, parts: tuple, layer: int | None, source: str, where: str):
        key = parts[0]
        if key not in self.layers:
            raise LookupError(key)
        layers = self.layers[key]
        index = len(layers) - 1 if layer is None else layer
        if index < 0:
            raise LookupError(key)
        marker = (parts, index)
        if marker in self.resolving:
            chain = " -> ".join(
                ".".join(p) for p, _ in self.resolving[self.resolving.index(marker) :]
            )
            raise ConfigError(
                f"cycle in __copy__: {chain} -> {'.'.join(parts)}", source=source, key=where
            )
        self.resolving.append(marker)
        try:
            layer_source, node = layers[index]
            node = self.walk(node, (key,), index, layer_source) if len(parts) == 1 else node
            for depth, part in enumerate(parts[1:], start=1):
                if isinstance(node, dict) and "__copy__" in node:
                    node = self.copy(node, parts[:depth], index, layer_source)
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise LookupError(part)
                if depth == len(parts) - 1:
                    node = self.walk(node, parts, index, layer_source)
            return node
        finally:
            self.resolving.pop()


# -- processing --------------------------------------------------------------


class _Builder:
    """Runs the ``__python__``, ``__factory__`` and initialization phases over a merged config."""

    def __init__(self, config: Config, origin: dict[str, str]):
        self.config = config
        self.origin = origin

    def initialize(self, components: list[tuple[str, Any]]) -> None:
        """Call ``initialize_component(config)`` on the freshly built ``components``."""
        for key, component in components:
            init = getattr(component, "initialize_component", None)
            if not callable(init):
                continue
            source = self.source_of((key.split(".")[0].split("[")[0],))
            try:
                init(self.config)
            except ConfigError as exc:
                raise exc.located(source=source, key=key)  # noqa: B904 (re-raise, now located)
            except Exception as exc:
                raise ConfigError(
                    f"initializing the component failed: {type(exc).__name__}: {exc}",
                    source=source,
                    key=key,
                ) from exc

    def source_of(self, path: tuple) -> str | None:
        return self.origin.get(str(path[0])) if path else None

    def run_python(self, statements, path: tuple):
        if isinstance(statements, (list, tuple)):
            statements = "\n".join(statements)
        if not isinstance(statements, str):
            raise ConfigError(
                "__python__ must be a string or list of statements",
                source=self.source_of(path),
                key=_format_path(path + ("__python__",)),
            )
        here = self.config.here
        try:
            exec(
                compile(statements, f"<__python__ in {_format_path(path) or 'config'}>", "exec"),
                {"C": self.config, "environ": os.environ, "here": here},
            )
        except ConfigError as exc:
            raise exc.located(source=self.source_of(path), key=_format_path(path + ("__python__",)))  # noqa: B904 (re-raise, now located)
        except Exception as exc:
            raise ConfigError(
                f"__python__ failed: {type(exc).__name__}: {exc}",
                source=self.source_of(path),
                key=_format_path(path + ("__python__",)),
            ) from exc

    def python_phase(self, node, path: tuple):
        if isinstance(node, dict):
            if "__python__" in node:
                self.run_python(node.pop("__python__"), path)
            for k, v in list(node.items()):
                self.python_phase(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.python_phase(v, path + (f"[{i}]",))

    def build(self, node, path: tuple):
        if isinstance(node, dict):
            built = {}
            for k, v in node.items():
                value = self.build(v, path + (k,))
                if value is not _DROPPED:
                    built[k] = value
            if any(key in built for key in FACTORY_KEYS):
                return self.create(built, path)
            node.clear()
            node.update(built)
            return node
        if isinstance(node, (list, tuple)):
            items = [self.build(v, path + (f"[{i}]",)) for i, v in enumerate(node)]
            items = [item for item in items if item is not _DROPPED]
            return items if isinstance(node, list) else type(node)(items)
        return node

    def create(self, spec: dict, path: tuple):
        from .factory import resolve_dotted_name

        key = _format_path(path)
        source = self.source_of(path)
        spec = dict(spec)
        name = spec.pop("__factory__", None)
        alias = spec.pop("!", None)
        name = name if name is not None else alias
        mode = spec.pop("__mode__", None)
        if mode is not None:
            modes = [mode] if isinstance(mode, str) else list(mode)
            if self.config.mode is not None and self.config.mode not in modes:
                return _DROPPED
        try:
            factory = resolve_dotted_name(name)
        except ConfigError as exc:
            raise exc.located(source=source, key=key + ".__factory__") from exc.__cause__
        if not callable(factory):
            raise ConfigError(
                f"{name!r} is not callable, so it cannot be a __factory__",
                source=source,
                key=key + ".__factory__",
            )
        bad = [k for k in spec if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ConfigError(
                f"{bad[0]!r} is not a valid keyword argument name for {name}",
                source=source,
                key=key,
            )
        try:
            component = factory(**spec)
        except ConfigError as exc:
            raise exc.located(source=source, key=key)  # noqa: B904 (re-raise, now located)
        except TypeError as exc:
            raise ConfigError(f"cannot create {name}: {exc}", source=source, key=key) from exc
        except Exception as exc:
            raise ConfigError(
                f"cannot create {name}: {type(exc).__name__}: {exc}", source=source, key=key
            ) from exc
        self.config.components.append((key, component))
        return component


def load_config(paths: str | Iterable[str], *, lazy: bool = False, **extra) -> Config:
    """Read, merge and process config files into a :class:`Config`.

    ``extra`` entries (such as ``__mode__='fit'``) are set before processing
    and win over the files. With ``lazy`` the components of an entry are
    built when the entry is first read (or by ``config.build(keys)``);
    otherwise every entry is built before this returns.
    """
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    elif not isinstance(paths, list):
        paths = list(paths)
    if not paths:
        raise ConfigError("no config file given", source="environment")

    layers: dict[str, list[tuple[str, Any]]] = {}
    python_blocks: list[tuple[str, Any]] = []
    for path in paths:
        data = read_config_file(path)
        for key, value in data.items():
            if key == "__python__":
                python_blocks.append((path, value))
            else:
                layers.setdefault(key, []).append((path, value))
    for key, value in extra.items():
        layers.setdefault(key, []).append(("arguments", value))
    # Relative paths follow the files' __relative_to__ marker, else the rule the paths came with
    # (config_files.ConfigPaths: "cwd" for PALLADIUM_CONFIG, as in Palladium).
    marker = layers.pop("__relative_to__", None)
    rule = marker[-1][1] if marker else getattr(paths, "relative_to", None)
    config_folder = os.path.dirname(os.path.abspath(paths[0]))
    path_base = relative_to_folder(rule, config_folder, marker[-1][0] if marker else None)
    origin = {key: entries[-1][0] for key, entries in layers.items()}

    # User modules next to the first config file are importable, as in Palladium.
    folder = os.path.dirname(os.path.abspath(paths[0]))
    if folder not in sys.path:
        sys.path.insert(0, folder)

    resolver = _CopyResolver(layers)
    config = Config(sources=paths, mode=extra.get("__mode__"))
    config.path_base = path_base
    for key in layers:
        config[key] = resolver.entry(key)
    if config.mode is None and isinstance(config.get("__mode__"), str):
        config.mode = config["__mode__"]

    builder = _Builder(config, origin)
    for source, statements in python_blocks:
        try:
            builder.run_python(statements, ())
        except ConfigError as exc:
            raise exc.located(source=source)  # noqa: B904 (re-raise, now located)
    for key in list(config):
        builder.python_phase(config[key], (key,))
    for key in list(config):
        if _dropped_by_mode(config[key], config.mode):
            del config[key]
    config._builder = builder
    config._unbuilt.update(config)
    if not lazy:
        config.build()
    return config


def _dropped_by_mode(node, mode: str | None) -> bool:
    """Whether a top-level entry is a component kept only in another ``__mode__``."""
    if mode is None or not isinstance(node, dict) or not any(k in node for k in FACTORY_KEYS):
        return False
    wanted = node.get("__mode__")
    if wanted is None:
        return False
    return mode not in ([wanted] if isinstance(wanted, str) else list(wanted))


# -- the program's configuration --------------------------------------------

_current: Config | None = None


def get_config(*, lazy: bool = False, **extra) -> Config:
    """The program's configuration, built once from ``PIPEFORGE_CONFIG``."""
    global _current
    if _current is None:
        _current = load_config(config_paths_from_env(), lazy=lazy, **extra)
    return _current


def initialize_config(*, lazy: bool = False, **extra) -> Config:
    """(Re)build the program's configuration and apply its ``logging`` entry.

    ``lazy`` builds each entry on first use (see :func:`load_config`).
    """
    global _current
    config = load_config(config_paths_from_env(), lazy=lazy, **extra)
    if "logging" in config:
        import logging.config  # only here: the scripts that need no logging entry start faster

        try:
            logging.config.dictConfig(config["logging"])
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ConfigError(
                f"invalid logging configuration: {exc}",
                source=", ".join(config.sources),
                key="logging",
            ) from exc
    _current = config
    return config
