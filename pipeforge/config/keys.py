"""The keys a configuration may hold, and the check that catches a misspelt one.

A misspelt key is worse than a wrong value: nothing reads it, so nothing
fails, and the default it was meant to replace runs silently. So every
top-level key of a config file must be one that pipeforge reads, and the
message for one that is not names the file, the key and the closest known
name (``config.py: scorin: unknown key 'scorin'; did you mean 'scoring'?``).

Which top-level keys are known
------------------------------
- every key of :data:`TOP_LEVEL_KEYS`, the one table of the entries pipeforge
  reads (each line names the module that reads it);
- the names users choose, by :data:`TOP_LEVEL_PATTERNS`: decorator lists
  (``*_decorators``: a service or route may name its own) and predict services
  (``predict_service*``);
- an entry built into a component that pipeforge finds by its type, under
  any name: a predict service, or a background component such as a
  ``ScheduledDatasetLoader`` (its ``__factory__`` is resolved to tell);
- the user's own entries, for ``__copy__`` or for their code's
  ``get_config()``: keys starting with ``_`` (but not ``__name__``-style
  special keys, which must be known) or ``x-``.

A config in Palladium's form (named by ``PALLADIUM_CONFIG``, found at
Palladium's places, or naming ``palladium.`` factories) may hold any key its
own code reads: there an unknown key is one warning line, not an error.

Keys inside an entry
--------------------
The room that reads an entry checks the keys inside it, next to the code
that reads them, with :func:`check_keys` (``metrics``, ``openapi``,
``dashboard``, ``batching``, ...). A plain-dict entry read only while
serving requests (``alive``) lists its keys in :data:`ENTRY_KEYS`, checked
when the config is loaded. A component's keywords are checked against its
factory's signature (:func:`check_keywords`, used by ``building``).

Adding a key
------------
A room that reads a new top-level key adds one line to
:data:`TOP_LEVEL_KEYS` (and a row to the table in docs/configuration.md,
which a test compares with it); a room whose entry takes a new setting adds
it where that room lists its settings.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "TOP_LEVEL_KEYS",
    "TOP_LEVEL_PATTERNS",
    "SPECIAL_KEYS",
    "DECORATOR_LISTS",
    "ENTRY_KEYS",
    "is_users_own",
    "unknown_key",
    "check_keys",
    "check_keywords",
    "check_top_level",
]

logger = logging.getLogger(__name__)

#: every top-level key pipeforge reads -> the module that reads it (add a line for a new key)
TOP_LEVEL_KEYS: dict[str, str] = {
    # training and the model scripts
    "model": "pipeforge.cli.models",
    "dataset_loader_train": "pipeforge.cli.models",
    "dataset_loader_test": "pipeforge.cli.models",
    "scoring": "pipeforge.training",
    "grid_search": "pipeforge.training",
    "model_persister": "pipeforge.cli.models",
    "model_persister_export": "pipeforge.cli.models",
    # the web service
    "service_metadata": "pipeforge.server.lifecycle",
    "flask_add_url_rules": "pipeforge.server.routes",
    "alive": "pipeforge.server.views",
    "batching": "pipeforge.server.batching",
    "metrics": "pipeforge.server.metrics",
    "openapi": "pipeforge.server.openapi",
    "dashboard": "pipeforge.server.dashboard",
    "inference_protocol": "pipeforge.server.inference_protocol.settings",
    # releasing models (docs/releasing.md)
    "drift": "pipeforge.release.drift",
    "feedback": "pipeforge.server.feedback",
    # background jobs
    "job_queue": "pipeforge.jobs.interface",
    # versioned pipelines
    "pipelines": "pipeforge.pipelines.build",
    "ops": "pipeforge.pipelines.build",
    "op_store": "pipeforge.pipelines.build",
    "use_worker": "pipeforge.pipelines.sync",
    "pipelines_refresh": "pipeforge.pipelines.sync",
    # online learning
    "online_models": "pipeforge.online.config",
    "online": "pipeforge.online.config",
    # who may call what (docs/security.md)
    "security": "pipeforge.guards.rule",
    "pipelines_admin": "pipeforge.guards.rule",
    # the process
    "logging": "pipeforge.config.current",
}

#: the names users choose: pattern (``*`` is any text) -> what it names
TOP_LEVEL_PATTERNS: dict[str, str] = {
    "*_decorators": "a decorator list (pipeforge.factory.decorate)",
    "predict_service*": "a predict service (pipeforge.server.app)",
}

#: the special top-level keys of the config processing itself (``__copy__`` is per entry)
SPECIAL_KEYS: tuple[str, ...] = ("__python__", "__mode__", "__relative_to__")

#: the decorator lists pipeforge's own routes and scripts read (offered as "did you mean")
DECORATOR_LISTS: tuple[str, ...] = (
    "predict_decorators",
    "alive_decorators",
    "list_decorators",
    "fit_decorators",
    "server_fit_decorators",
    "update_model_cache_decorators",
    "activate_decorators",
    "delete_decorators",
    "update_model_decorators",
    "load_data_decorators",
    "pipelines_decorators",
    "dashboard_decorators",
    "openapi_decorators",
    "metrics_decorators",
    "online_decorators",
    "online_admin_decorators",
    "online_data_decorators",
    "pipelines_admin_decorators",
    "feedback_decorators",
)

#: plain-dict entries checked when the config is loaded (their readers run per request)
ENTRY_KEYS: dict[str, tuple[str, ...]] = {
    "alive": ("process_store_required",),
}

_USERS_PREFIXES = ("_", "x-")


def is_users_own(key: Any) -> bool:
    """Whether ``key`` is one of the user's own entries (``_name`` or ``x-name``), never checked."""
    if not isinstance(key, str):
        return False
    if key.startswith("__") and key.endswith("__") and len(key) > 4:
        return False  # a special key: __python__, __mode__, ... must be spelt right
    return key.startswith(_USERS_PREFIXES)


def unknown_key(
    name: Any,
    known: Iterable[str],
    *,
    what: str = "key",
    owner: str | None = None,
    listed: bool = True,
) -> str:
    """The problem of an unknown ``name``: the closest known name, and the known ones.

    ``"unknown key 'pth'; did you mean 'path'? (known: path, enabled)"``;
    ``owner`` adds whose key it is (``"unknown keyword 'Cx' of LogisticRegression"``).
    """
    known = [k for k in known if isinstance(k, str)]
    text = f"unknown {what} {name!r}" + (f" of {owner}" if owner else "")
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    if close:
        text += f"; did you mean {close[0]!r}?"
    if listed and known:
        text += f" (known: {', '.join(known)})"
    return text


def check_keys(
    value: Mapping[Any, Any],
    known: Iterable[str],
    *,
    key: str,
    config: Any = None,
    what: str = "key",
) -> None:
    """Raise a :class:`ConfigError` for the first key of ``value`` that is not in ``known``.

    ``key`` is the entry's key path (``metrics``, ``online_models.spam``); the
    error names ``key.<unknown>``, the closest known name and the known ones.
    ``config`` (a :class:`~pipeforge.config.Config`) gives the file the
    entry came from.
    """
    known = list(known)
    for name in value:
        if name not in known:
            raise ConfigError(
                unknown_key(name, known, what=what),
                source=_source(config, key),
                key=f"{key}.{name}",
            )


def _source(config: Any, key: str) -> str | None:
    source_of = getattr(config, "source_of", None)
    if callable(source_of):
        return source_of(key.split(".")[0].split("[")[0])
    sources = getattr(config, "sources", None)
    return ", ".join(sources) if sources else None


def check_keywords(
    factory: Callable[..., Any],
    spec: Mapping[str, Any],
    *,
    name: str,
    key: str,
    source: str | None = None,
) -> None:
    """Raise a :class:`ConfigError` if ``spec`` does not fit ``factory``'s keyword arguments.

    An unknown keyword (when the factory takes no ``**kwargs``) is named with
    its key path, the closest accepted keyword and the accepted ones; a
    missing required keyword is named too, with the given keyword that
    looks like a misspelling of it. Factories whose signature cannot be
    read are left to fail (or not) when called.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    named = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    accepted = [p.name for p in named]
    open_ended = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
    listing = f" (accepted: {', '.join(accepted)}" if accepted else " (accepted: none"
    listing += f", and what **{open_ended[0]} takes)" if open_ended else ")"
    if not open_ended:
        for given in spec:
            if given not in accepted:
                problem = unknown_key(given, accepted, what="keyword", owner=name, listed=False)
                raise ConfigError(problem + listing, source=source, key=f"{key}.{given}")
    missing = [p.name for p in named if p.default is p.empty and p.name not in spec]
    if missing:
        problem = f"missing keyword {missing[0]!r} of {name}"
        for given in (g for g in spec if g not in accepted):
            close = difflib.get_close_matches(given, missing, n=1)
            if close:
                problem = (
                    f"unknown keyword {given!r} of {name}; did you mean {close[0]!r}? "
                    f"({close[0]!r} is missing)"
                )
                raise ConfigError(problem + listing, source=source, key=f"{key}.{given}")
        raise ConfigError(problem + listing, source=source, key=key)


def _known_top_level(key: str) -> bool:
    if key in TOP_LEVEL_KEYS or key in SPECIAL_KEYS or is_users_own(key):
        return True
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in TOP_LEVEL_PATTERNS)


def _typed_entry(key: str, value: Any) -> bool:
    """Whether ``value`` specifies a component pipeforge finds by its type under any key.

    A predict service is served under any name. A background component is
    started under any name, but one named like a known key (``model_persistor``)
    is taken for a misspelling of it.
    """
    from ..factory import resolve_dotted_name
    from ..interfaces import Background, PredictService

    if not isinstance(value, Mapping):
        return False
    name = value.get("__factory__", value.get("!"))
    if not isinstance(name, str):
        return False
    try:
        factory = resolve_dotted_name(name)
    except Exception:  # not importable: building it says why, with its key path
        return True
    if not isinstance(factory, type):
        return False
    if issubclass(factory, PredictService):
        return True
    near = difflib.get_close_matches(key, list(TOP_LEVEL_KEYS), n=1, cutoff=0.8)
    return issubclass(factory, Background) and not near


def check_top_level(
    config: Mapping[str, Any],
    origin: Mapping[str, str | None],
    *,
    palladium: bool = False,
) -> None:
    """Check the top-level keys of ``config`` (copies resolved, nothing built yet).

    ``origin`` maps each key to the file it came from; keys given by the
    program (origin ``"arguments"``) are not checked. An unknown key is a
    :class:`ConfigError`; in a ``palladium`` form config a warning line.
    Plain-dict entries of :data:`ENTRY_KEYS` have their keys checked too.
    """
    candidates = [*TOP_LEVEL_KEYS, *SPECIAL_KEYS, *DECORATOR_LISTS, "predict_service"]
    for key, value in config.items():
        source = origin.get(key)
        if source == "arguments":
            continue
        if not isinstance(key, str) or not _known_top_level(key):
            if isinstance(key, str) and _typed_entry(key, value):
                continue
            problem = unknown_key(key, candidates, listed=False)
            if palladium:  # Palladium's configs may hold entries for the project's own code
                where = ": ".join(part for part in (source, str(key)) if part)
                logger.warning("%s: %s (pipeforge does not read it)", where, problem)
                continue
            if "did you mean" not in problem:
                problem += " (pipeforge reads none such; your own entries start with '_' or 'x-')"
            raise ConfigError(problem, source=source, key=str(key))
        fields = ENTRY_KEYS.get(key)
        if fields is not None and isinstance(value, Mapping) and not _is_component(value):
            check_keys(value, fields, key=key, config=_Sources(origin))


def _is_component(value: Mapping[str, Any]) -> bool:
    return "__factory__" in value or "!" in value


class _Sources:
    """``origin`` in the shape :func:`check_keys` asks a config for."""

    def __init__(self, origin: Mapping[str, str | None]):
        self.origin = origin

    def source_of(self, key: str) -> str | None:
        return self.origin.get(key)
