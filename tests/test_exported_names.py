"""The public API, pinned: what every public module exports, and every name of pipeforge 0.1.

``tests/data/public_api.json`` holds two tables. ``modules``: the ``__all__``
of every public module of the package; a name that disappears, or appears
without being added to the table, fails here, so a move cannot drop a name
silently. ``names_of_0.1``: every name the modules of the flat 0.1 layout
exported (``pipeforge.rq_queue.RQJobQueue``, ``pipeforge.server.fit``, ...),
with the dotted name of the object it is now; configs, pickles and user code
name them, so each must still import, and resolve through the config factory,
to that very object.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
from pathlib import Path

import pytest

import pipeforge
from pipeforge.factory import resolve_dotted_name
from pipeforge.moved_modules import MOVED_MODULES

TABLES = json.loads((Path(__file__).parent / "data" / "public_api.json").read_text())
#: modules that export nothing by name: the WSGI entry point builds an app at import
NOT_LIBRARIES = {"pipeforge.wsgi"}


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with ``_``."""
    found = ["pipeforge"]
    for info in pkgutil.walk_packages(pipeforge.__path__, "pipeforge."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.name in NOT_LIBRARIES:
            continue
        found.append(info.name)
    return sorted(found)


def canonical_name(obj, fallback: str) -> str:
    """The dotted name an object is defined under (its module and qualified name)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        try:
            if _walk(importlib.import_module(module), qualname) is obj:
                return f"{module}.{qualname}"
        except AttributeError:
            pass
    return fallback


def _walk(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_table_lists_every_public_module():
    assert public_modules() == sorted(TABLES["modules"])


@pytest.mark.parametrize("module", sorted(TABLES["modules"]))
def test_a_module_exports_exactly_its_pinned_names(module):
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    missing = [name for name in exported if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"
    assert sorted(exported) == TABLES["modules"][module]


@pytest.mark.parametrize("old", sorted(TABLES["names_of_0.1"]))
def test_a_name_of_pipeforge_01_is_still_the_same_object(old):
    now = TABLES["names_of_0.1"][old]
    module, _, name = old.rpartition(".")
    expected = _resolve(now)
    assert getattr(importlib.import_module(module), name) is expected
    if not isinstance(expected, types.ModuleType):
        assert resolve_dotted_name(old) is expected


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        return _walk(module, ".".join(parts[cut:])) if parts[cut:] else module
    raise AssertionError(f"{dotted} does not import")


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_name_is_the_module_that_replaced_it(old):
    module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])
    assert module.__spec__.name == MOVED_MODULES[old]  # the alias leaves the module's own spec
