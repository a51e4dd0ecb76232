"""From config files (or dicts already read) to a processed :class:`Config`.

A configuration is one or more dicts (usually files: ``.py`` dict
expressions, YAML or JSON) merged top-level key by key, later ones winning.
Processing then runs in a fixed order, each phase over the whole tree:

1. ``__copy__`` (with ``__default__``): deep copies of other entries
   (:mod:`.copies`); then every top-level key is checked against the keys
   pipeforge reads (:mod:`.keys`: a misspelt key is an error, a warning in a
   config of Palladium's form);
2. ``__python__``: statements run with the config as ``C``;
3. ``__factory__`` / ``!``: components built depth-first, keyword
   arguments first; ``__mode__`` on a component keeps it only in that mode;
4. ``initialize_component(config)`` on every component that has it
   (phases 2 to 4: :mod:`.building`).

Phases 1 and 2 always run over the whole config; by default phases 3 and 4
do too. With ``lazy=True`` an entry is built (and its components
initialized) on first access instead, so a script that only lists the
stored models never imports scikit-learn to build the ``model`` entry.

:func:`process_config` is that processing; :func:`load_config` reads the
files and hands their dicts to it. Every problem is raised as a
:class:`~pipeforge.errors.ConfigError` that names the file, the key path
and what is wrong.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .building import Builder, dropped_by_mode
from .copies import CopyResolver, Layers
from .files import RELATIVE_TO_CWD, read_config_file, relative_to_folder
from .keys import check_top_level
from .mapping import Config

__all__ = ["process_config", "load_config"]


def process_config(
    *configs: Mapping[str, Any],
    sources: Sequence[str] | None = None,
    here: str | None = None,
    relative_to: str | None = None,
    mode: str | None = None,
    lazy: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Config:
    """Merge and process config dicts already read into a :class:`Config`.

    ``configs`` are merged top-level in order, later ones winning, then
    ``__copy__``, ``__python__``, ``__factory__`` and ``__mode__`` are
    processed and components initialized (see the module docstring). The
    dicts given are left as they are.

    ``sources`` names the file each config came from (for messages, and
    ``here`` defaults to the first one's folder); ``here`` is the folder
    ``__python__`` sees as ``here``; relative paths resolve against it,
    or against the current directory with ``relative_to='cwd'`` (a
    ``__relative_to__`` entry overrides both). ``extra`` entries win
    over the configs; ``mode`` builds for that mode, as an ``__mode__``
    entry does. With ``lazy`` an entry is built when first read.
    """
    names: list[str | None] = [None] * len(configs) if sources is None else list(sources)
    if len(names) != len(configs):
        raise ValueError(f"got {len(configs)} configs but {len(names)} sources")
    extra = dict(extra or {})
    if mode is not None:
        extra["__mode__"] = mode

    layers: Layers = {}
    python_blocks: list[tuple[str | None, Any]] = []
    for source, data in zip(names, configs, strict=True):
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"a config must be a dict of entries; got {type(data).__name__}", source=source
            )
        for key, value in data.items():
            if key == "__python__":
                python_blocks.append((source, value))
            else:
                layers.setdefault(key, []).append((source, value))
    for key, value in extra.items():
        layers.setdefault(key, []).append(("arguments", value))

    config = Config(
        sources=[name for name in names if name is not None],
        mode=extra.get("__mode__"),
        here=here,
    )
    # Relative paths follow the configs' __relative_to__ marker, else the rule they came with
    # (files.ConfigPaths: "cwd" for PALLADIUM_CONFIG, as in Palladium).
    marker = layers.pop("__relative_to__", None)
    rule = marker[-1][1] if marker else relative_to
    config.path_base = relative_to_folder(rule, config.here, marker[-1][0] if marker else None)
    origin = {key: entries[-1][0] for key, entries in layers.items()}

    config.origins = origin
    config.palladium_form = rule == RELATIVE_TO_CWD or any(map(_names_palladium, configs))

    resolver = CopyResolver(layers)
    for key in layers:
        config[key] = resolver.entry(key)
    check_top_level(config, origin, palladium=config.palladium_form)
    if config.mode is None and isinstance(config.get("__mode__"), str):
        config.mode = config["__mode__"]

    builder = Builder(config, origin, config.components)
    for source, statements in python_blocks:
        try:
            builder.run_python(statements, ())
        except ConfigError as exc:
            raise exc.located(source=source)  # noqa: B904 (re-raise, now located)
    for key in list(config):
        builder.python_phase(config[key], (key,))
    for key in list(config):
        if dropped_by_mode(config[key], config.mode):
            del config[key]
    config.defer(builder)
    if not lazy:
        config.build()
    return config


def load_config(paths: str | Iterable[str], *, lazy: bool = False, **extra: Any) -> Config:
    """Read, merge and process config files into a :class:`Config`.

    ``paths`` is a list of files or one comma-separated string. ``extra``
    entries (such as ``__mode__='fit'``) are set before processing and win
    over the files. With ``lazy`` the components of an entry are built
    when the entry is first read (or by ``config.build(keys)``); otherwise
    every entry is built before this returns.
    """
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    elif not isinstance(paths, list):
        paths = list(paths)
    if not paths:
        raise ConfigError("no config file given", source="environment")
    configs = [read_config_file(path) for path in paths]
    _importable_next_to(paths[0])
    return process_config(
        *configs,
        sources=paths,
        relative_to=getattr(paths, "relative_to", None),  # files.ConfigPaths knows it
        lazy=lazy,
        extra=extra,
    )


def _names_palladium(node: Any) -> bool:
    """Whether a config names a ``palladium.`` factory anywhere (Palladium's form)."""
    if isinstance(node, Mapping):
        name = node.get("__factory__", node.get("!"))
        if isinstance(name, str) and name.startswith("palladium."):
            return True
        return any(map(_names_palladium, node.values()))
    if isinstance(node, list | tuple):
        return any(map(_names_palladium, node))
    return False


def _importable_next_to(path: str) -> None:
    """Make the user's modules next to the first config file importable, as in Palladium.

    Palladium configs name their project's own classes (``'__factory__':
    'mymodel.Forest'``) and expect the config's folder on ``sys.path``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
