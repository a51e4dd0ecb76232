"""Palladium's public names and the pipeforge objects that stand in for them.

One table serves both ways a Palladium project names things: dotted names
in config files (``'__factory__': 'palladium.dataset.Table'``, resolved by
:func:`pipeforge.factory.resolve_dotted_name`) and imports in the user's
modules (``from palladium.interfaces import DatasetLoader``, served by the
``palladium`` package that ships with pipeforge). Resolving a config name
never imports the ``palladium`` package, so a real Palladium installed next
to pipeforge cannot change what a config builds.

Errors always name the Palladium name the user wrote (``palladium.R.Foo``),
never the pipeforge module behind it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import PipeforgeError

__all__ = ["NAMES", "MODULES", "UnsupportedName", "Unsupported", "resolve", "resolve_dotted"]

JULIA = (
    "Julia models are not supported by pipeforge; port the model to scikit-learn, "
    "or to R with palladium.R.ClassificationModel / RegressionModel (pipeforge.R)"
)


class Unsupported:
    """A Palladium name pipeforge deliberately does not provide, and why."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unsupported({self.reason!r})"


class UnsupportedName(PipeforgeError, ImportError):
    """A Palladium name that pipeforge does not provide (e.g. the Julia models).

    An ``ImportError``, so ``from palladium.julia import ClassificationModel``
    fails with this message rather than a bare "cannot import name".
    """


_INTERNAL_SERVER = Unsupported(
    "this was internal to Palladium's server; pipeforge.server.create_app builds the "
    "/predict views from the config's predict services"
)
_CONFIG = "pipeforge.palladium_compat.config"
_LEGACY = "pipeforge.palladium_compat.legacy"
_SCRIPTS = "pipeforge.palladium_compat.scripts"
_WORKFLOW = "pipeforge.palladium_compat.workflow"

# module -> {Palladium name: "pipeforge.module:attribute" (a trailing "()" calls it)}
NAMES: dict[str, dict[str, Any]] = {
    "palladium": {"__version__": "pipeforge:__version__"},
    "palladium.R": {
        "DatasetLoader": "pipeforge.R:DatasetLoader",
        "AbstractModel": "pipeforge.R:AbstractModel",
        "ClassificationModel": "pipeforge.R:ClassificationModel",
        "RegressionModel": "pipeforge.R:RegressionModel",
        "ObjectMixin": "pipeforge.R:RObject",
        "Rpy2Transform": "pipeforge.R:Rpy2Transform",
    },
    "palladium.cache": {
        "abstractcache": "pipeforge.palladium_compat.cache:AbstractCache",
        "diskcache": "pipeforge.palladium_compat.cache:DiskCache",
        "picklediskcache": "pipeforge.palladium_compat.cache:PickleDiskCache",
        "compute_key_attrs": "pipeforge.palladium_compat.cache:compute_key_attrs",
    },
    "palladium.config": {
        "Config": "pipeforge.config:Config",
        "get_config": "pipeforge.config:get_config",
        "initialize_config": "pipeforge.config:initialize_config",
        "process_config": f"{_CONFIG}:process_config",
        "ComponentHandler": f"{_CONFIG}:ComponentHandler",
        "CopyHandler": f"{_CONFIG}:CopyHandler",
        "PythonHandler": f"{_CONFIG}:PythonHandler",
    },
    "palladium.dataset": {
        "CSV": "pipeforge.dataset:CSV",
        "Table": "pipeforge.dataset:Table",
        "SQL": "pipeforge.dataset:SQL",
        "EmptyDatasetLoader": "pipeforge.dataset:EmptyDatasetLoader",
        "ScheduledDatasetLoader": "pipeforge.dataset:ScheduledDatasetLoader",
    },
    "palladium.eval": {
        "test": f"{_WORKFLOW}:test",
        "list": f"{_WORKFLOW}:list_models",
        "test_cmd": f"{_SCRIPTS}:pld_test_main",
        "list_cmd": f"{_SCRIPTS}:pld_list_main",
    },
    "palladium.fit": {
        "fit": f"{_WORKFLOW}:fit",
        "activate": f"{_WORKFLOW}:activate",
        "delete": f"{_WORKFLOW}:delete",
        "grid_search": f"{_WORKFLOW}:grid_search",
        "with_parallel_backend": "pipeforge.fit:with_parallel_backend",
        "fit_cmd": f"{_SCRIPTS}:pld_fit_main",
        "admin_cmd": f"{_SCRIPTS}:pld_admin_main",
        "grid_search_cmd": f"{_SCRIPTS}:pld_grid_search_main",
    },
    "palladium.interfaces": {
        "DatasetLoader": "pipeforge.interfaces:DatasetLoader",
        "Model": f"{_LEGACY}:Model",
        "ModelPersister": "pipeforge.interfaces:ModelPersister",
        "PredictService": "pipeforge.interfaces:PredictService",
        "PredictError": "pipeforge.errors:PredictError",
        "CrossValidationGenerator": f"{_LEGACY}:CrossValidationGenerator",
        "DatasetLoaderMeta": "abc:ABCMeta",
        "ModelPersisterMeta": "abc:ABCMeta",
        "annotate": "pipeforge.interfaces:annotate",
    },
    "palladium.julia": {
        "AbstractModel": Unsupported(JULIA),
        "ClassificationModel": Unsupported(JULIA),
        "make_bridge": Unsupported(JULIA),
    },
    "palladium.persistence": {
        "CachedUpdatePersister": "pipeforge.persistence:CachedUpdatePersister",
        "Database": "pipeforge.persistence:Database",
        "DatabaseCLOB": "pipeforge.persistence:Database",
        "File": "pipeforge.persistence:File",
        "FileLike": "pipeforge.persistence.filelike:FileLike",
        "FileLikeIO": "pipeforge.persistence.filelike:FileLikeIO",
        "FileIO": "pipeforge.persistence.filelike:FileIO",
        "Rest": "pipeforge.persistence.filelike:Rest",
        "RestIO": "pipeforge.persistence.filelike:RestIO",
        "UpgradeSteps": "pipeforge.persistence.upgrade:UpgradeSteps",
    },
    "palladium.server": {
        "app": f"{_LEGACY}:shared_app()",
        "PredictService": "pipeforge.server:PredictService",
        "add_url_rule": "pipeforge.server:add_url_rule",
        "fit": "pipeforge.server:fit",
        "update_model_cache": "pipeforge.server:update_model_cache",
        "activate": "pipeforge.server:activate",
        "list": "pipeforge.server:list_models",
        "alive": "pipeforge.server:alive",
        "make_ujson_response": f"{_LEGACY}:make_ujson_response",
        "devserver_cmd": "pipeforge.palladium_compat.serve:pld_devserver_main",
        "stream_cmd": f"{_SCRIPTS}:pld_stream_main",
        "predict": _INTERNAL_SERVER,
        "create_predict_function": _INTERNAL_SERVER,
        "PredictStream": _INTERNAL_SERVER,
    },
    "palladium.util": {
        "Partial": "pipeforge.factory:Partial",
        "resolve_dotted_name": "pipeforge.factory:resolve_dotted_name",
        "ProcessStore": "pipeforge.process_store:ProcessStore",
        "RruleThread": "pipeforge.scheduling:RruleThread",
        "get_config": "pipeforge.config:get_config",
        "initialize_config": "pipeforge.config:initialize_config",
        "process_store": f"{_LEGACY}:process_store",
        "PluggableDecorator": f"{_LEGACY}:PluggableDecorator",
        "args_from_config": f"{_LEGACY}:args_from_config",
        "apply_kwargs": f"{_LEGACY}:apply_kwargs",
        "get_metadata": f"{_LEGACY}:get_metadata",
        "memory_usage_psutil": f"{_LEGACY}:memory_usage_psutil",
        "run_job": f"{_LEGACY}:run_job",
        "session_scope": f"{_LEGACY}:session_scope",
        "timer": f"{_LEGACY}:timer",
        "logger": f"{_LEGACY}:logger",
        "upgrade": f"{_WORKFLOW}:upgrade",
        "export": f"{_WORKFLOW}:export",
        "upgrade_cmd": f"{_SCRIPTS}:pld_upgrade_main",
        "version_cmd": f"{_SCRIPTS}:pld_version_main",
        "export_cmd": f"{_SCRIPTS}:pld_export_main",
    },
    "palladium.wsgi": {"app": f"{_LEGACY}:wsgi_app()"},
}

# The submodules of the ``palladium`` package.
MODULES = tuple(name.split(".", 1)[1] for name in NAMES if "." in name)


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    call = attr.endswith("()")
    module = importlib.import_module(module_name)
    obj = getattr(module, attr[:-2] if call else attr)
    return obj() if call else obj


def resolve(module: str, name: str) -> Any:
    """The object standing in for Palladium's ``module.name``.

    Raises :class:`UnsupportedName` for names pipeforge does not provide,
    ``AttributeError`` for names Palladium never had, and ``ImportError``
    (naming the Palladium name) when what stands in for it cannot be imported.
    """
    names = NAMES.get(module)
    if names is None or name not in names:
        known = ", ".join(sorted(names or ())) or "nothing"
        raise AttributeError(
            f"{module}.{name} is not a name of Palladium's {module} that pipeforge knows "
            f"(it provides: {known}); see docs/migrating-from-palladium.md"
        )
    target = names[name]
    if isinstance(target, Unsupported):
        raise UnsupportedName(f"{module}.{name}: {target.reason}", name=name)
    try:
        return _load(target)
    except ImportError as exc:
        raise ImportError(f"cannot import {module}.{name}: {exc}", name=f"{module}.{name}") from exc


def resolve_dotted(name: str, resolve_pipeforge_name: Callable[[str], Any]) -> Any:
    """A dotted Palladium name from a config (``palladium.mod.Name[.attr]`` or ``palladium.mod:Name``).

    Names the table does not know fall back to the same name under
    ``pipeforge.``, resolved by ``resolve_pipeforge_name`` (the factory's
    resolver, passed in so that this table needs nothing of the factory);
    errors name ``name`` as written.
    """
    path = name.replace(":", ".").split(".")
    for cut in range(len(path) - 1, 1, -1):
        module = ".".join(path[:cut])
        if module in NAMES:
            obj = resolve(module, path[cut])
            for attr in path[cut + 1 :]:
                try:
                    obj = getattr(obj, attr)
                except AttributeError:
                    raise AttributeError(
                        f"{'.'.join(path[: cut + 1])} has no attribute {attr!r}"
                    ) from None
            return obj
    try:
        return resolve_pipeforge_name("pipeforge" + name[len("palladium") :])
    except PipeforgeError:
        modules = ", ".join(sorted(NAMES))
        raise ImportError(
            f"{name} is not a Palladium name that pipeforge knows (its palladium modules: "
            f"{modules}); see docs/migrating-from-palladium.md",
            name=name,
        ) from None


def module_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``module``'s names from the table (used by ``palladium/``)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in NAMES[module]:
            raise AttributeError(name)
        return resolve(module, name)

    return __getattr__


def module_names(module: str) -> list[str]:
    """The names ``module`` provides (its ``__all__``: unsupported names left out)."""
    return sorted(
        name
        for name, target in NAMES[module].items()
        if not isinstance(target, Unsupported) and not name.startswith("__")
    )
