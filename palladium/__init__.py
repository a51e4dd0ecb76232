"""Palladium's import names, served by pipeforge.

A Palladium project's own modules keep importing ``palladium.interfaces``,
``palladium.util``, ``palladium.R``, ... and ``gunicorn palladium.wsgi:app``
keeps working: each name stands for a pipeforge object (the table is
``pipeforge/palladium_names.py``; docs/migrating-from-palladium.md lists them).

The real Palladium wins when it can be imported from another place on
``sys.path``: this package then steps aside. ``PIPEFORGE_PALLADIUM=pipeforge``
keeps pipeforge's names anyway; ``PIPEFORGE_PALLADIUM=palladium`` insists on
the real Palladium (an ImportError if there is none).
"""

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import typing as _typing


def _real_palladium_spec() -> importlib.machinery.ModuleSpec | None:
    """The spec of a ``palladium`` package elsewhere on sys.path that is not this shim."""
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for entry in sys.path:
        if not isinstance(entry, str) or os.path.abspath(entry or os.curdir) == ours:
            continue
        spec = importlib.machinery.PathFinder.find_spec(__name__, [entry or os.curdir])
        if spec is None or not spec.submodule_search_locations:
            continue
        location = list(spec.submodule_search_locations)[0]
        if os.path.abspath(location) == os.path.dirname(os.path.abspath(__file__)):
            continue
        if os.path.exists(os.path.join(location, "_shim.py")):
            continue  # another copy of this package
        return spec
    return None


_choice = os.environ.get("PIPEFORGE_PALLADIUM", "auto").strip().lower() or "auto"
if _choice not in ("auto", "pipeforge", "palladium"):
    raise ImportError(f"PIPEFORGE_PALLADIUM must be auto, pipeforge or palladium; got {_choice!r}")
_spec = None if _choice == "pipeforge" else _real_palladium_spec()
if _spec is None and _choice == "palladium":
    raise ImportError(
        "PIPEFORGE_PALLADIUM=palladium, but the real Palladium is not installed "
        "(only pipeforge's palladium names are); install it or unset the variable"
    )

if _spec is not None:
    # Hand over to the real Palladium: the import system returns sys.modules["palladium"].
    _real = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _real
    try:
        _spec.loader.exec_module(_real)
    except Exception as _exc:
        del sys.modules[__name__]
        raise ImportError(
            f"the real Palladium in {_spec.submodule_search_locations[0]} failed to import "
            f"({type(_exc).__name__}: {_exc}); set PIPEFORGE_PALLADIUM=pipeforge to use "
            "pipeforge's palladium names instead"
        ) from _exc
else:
    from pipeforge.palladium_compat.names import MODULES as _MODULES
    from pipeforge.palladium_compat.names import module_getattr as _module_getattr

    _names = _module_getattr(__name__)

    def __getattr__(name: str) -> _typing.Any:
        if name in _MODULES:
            return importlib.import_module(f"{__name__}.{name}")
        return _names(name)

    def __dir__() -> list[str]:
        return sorted({*(n for n in globals() if not n.startswith("_")), *_MODULES, "__version__"})
