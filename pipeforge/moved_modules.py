"""Where the modules of earlier pipeforge versions live now.

pipeforge 0.1 was one flat package; its modules moved into subpackages by
concern (docs/architecture.md). Configs, pickled models and user code written
for the flat layout name the old modules (``pipeforge.rq_queue.RQJobQueue``,
``pipeforge.predict_service.PredictService``), so each old name stays an alias
of the module that replaced it: ``import pipeforge.rq_queue`` gives the very
module object ``pipeforge.jobs.rq``, and every name in it is the same object.

The four old modules that became packages (``server``, ``persistence``,
``jobs``, ``cli``) need no alias: their packages re-export the old names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "install", "moved_name_getattr"]

# old dotted module name -> the module that holds its names now
MOVED_MODULES: dict[str, str] = {
    "pipeforge.predict_service": "pipeforge.server.predict_service",
    "pipeforge.fields": "pipeforge.server.fields",
    "pipeforge.model_inputs": "pipeforge.server.model_inputs",
    "pipeforge.batching": "pipeforge.server.batching",
    "pipeforge.fast_routes": "pipeforge.server.front_door",
    "pipeforge.openapi": "pipeforge.server.openapi",
    "pipeforge.openapi_operations": "pipeforge.server.openapi_operations",
    "pipeforge.metrics": "pipeforge.server.metrics",
    "pipeforge.metrics_dir": "pipeforge.server.metrics_dir",
    "pipeforge.dashboard": "pipeforge.server.dashboard",
    "pipeforge.dashboard.routes": "pipeforge.server.dashboard.routes",
    "pipeforge.file_persister": "pipeforge.persistence.file",
    "pipeforge.filelike": "pipeforge.persistence.filelike",
    "pipeforge.model_storage": "pipeforge.persistence.storage",
    "pipeforge.model_cache": "pipeforge.persistence.model_cache",
    "pipeforge.palladium_stores": "pipeforge.persistence.palladium_stores",
    "pipeforge.upgrade": "pipeforge.persistence.upgrade",
    "pipeforge.rq_queue": "pipeforge.jobs.rq",
    "pipeforge.worker": "pipeforge.cli.worker",
    "pipeforge.queue_scripts": "pipeforge.cli.queue",
    "pipeforge.scripts": "pipeforge.cli.scripts",
    "pipeforge.serve_scripts": "pipeforge.cli.serve",
    "pipeforge.dockerize": "pipeforge.cli.dockerize",
    "pipeforge.lockfile": "pipeforge.cli.lockfile",
    "pipeforge.palladium_names": "pipeforge.palladium_compat.names",
    "pipeforge.palladium_legacy": "pipeforge.palladium_compat.legacy",
    "pipeforge.palladium_scripts": "pipeforge.palladium_compat.scripts",
    "pipeforge.cache": "pipeforge.palladium_compat.cache",
    "pipeforge.online.cli": "pipeforge.cli.online",
    "pipeforge.online.fast_routes": "pipeforge.online.http",
    "pipeforge.pipelines.cli": "pipeforge.cli.pipelines",
    "pipeforge.config_files": "pipeforge.config.files",
}

# old dotted name -> where it lives now, for the few names that left their
# module for a layer above it (a lower layer may not import them back)
MOVED_NAMES: dict[str, str] = {
    "pipeforge.jobs.job_view": "pipeforge.server.views:job_view",
    "pipeforge.palladium_compat.legacy.fit": "pipeforge.palladium_compat.workflow:fit",
    "pipeforge.palladium_compat.legacy.test": "pipeforge.palladium_compat.workflow:test",
    "pipeforge.palladium_compat.legacy.print_listing": "pipeforge.palladium_compat.workflow:print_listing",
    "pipeforge.palladium_compat.legacy.list_models": "pipeforge.palladium_compat.workflow:list_models",
    "pipeforge.palladium_compat.legacy.grid_search": "pipeforge.palladium_compat.workflow:grid_search",
    "pipeforge.palladium_compat.legacy.activate": "pipeforge.palladium_compat.workflow:activate",
    "pipeforge.palladium_compat.legacy.delete": "pipeforge.palladium_compat.workflow:delete",
    "pipeforge.palladium_compat.legacy.upgrade": "pipeforge.palladium_compat.workflow:upgrade",
    "pipeforge.palladium_compat.legacy.export": "pipeforge.palladium_compat.workflow:export",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module that replaced it (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(MOVED_MODULES[spec.name])
        # The import system stamps the alias's spec on the module it gets back;
        # exec_module puts the module's own spec back.
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the alias's spec (from create_module) just before.
        module.__spec__ = module.__spec__.loader_state  # type: ignore[union-attr]


def moved_name_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that finds ``module``'s names of :data:`MOVED_NAMES` at first use."""

    def __getattr__(name: str) -> Any:
        target = MOVED_NAMES.get(f"{module}.{name}")
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, _, attr = target.partition(":")
        return getattr(importlib.import_module(where), attr)

    return __getattr__


def install() -> None:
    """Put the finder of old module names on ``sys.meta_path`` (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
