"""``requirements-lock.txt``: the exact versions of the libraries installed here.

An image built from lower bounds gets whatever is newest on the day it is
built; pinning the versions of the environment where the model was fitted
and tested makes an image rebuilt later run the same libraries. Only the
standard library is used (``importlib.metadata``), so writing a lock costs
no import of what it pins.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable

from ..errors import PipeforgeError

__all__ = ["requirements_lock"]

_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> tuple[str, set[str], str | None] | None:
    """``name[extras]; extra == "x"`` → (name, extras, the extra it belongs to)."""
    spec, _, marker = requirement.partition(";")
    match = _REQUIREMENT.match(spec)
    if match is None:
        return None
    extras = {_canonical(e) for e in (match.group(2) or "").split(",") if e.strip()}
    extra = _EXTRA_MARKER.search(marker)
    return match.group(1), extras, _canonical(extra.group(1)) if extra else None


def _pins(roots: Iterable[tuple[str, set[str]]]) -> dict[str, tuple[str, str]]:
    """The installed distributions ``roots`` need, transitively: {canonical: (name, version)}.

    A requirement whose distribution is not installed here is left out: its
    environment marker excludes this Python, or nothing here needs it.
    """
    from importlib import metadata

    pinned: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, frozenset]] = set()
    todo = list(roots)
    while todo:
        name, extras = todo.pop()
        key = (_canonical(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        pinned[_canonical(name)] = (dist.metadata["Name"] or name, dist.version)
        for requirement in dist.requires or []:
            parsed = _parse(requirement)
            if parsed is not None and (parsed[2] is None or parsed[2] in extras):
                todo.append(parsed[:2])
    return pinned


def _app_requirements(app_dir: str) -> list[str]:
    path = os.path.join(app_dir, "requirements.txt")
    if not os.path.isfile(path):
        return []
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith(("#", "-")) and "://" not in line:
                parsed = _parse(line)
                if parsed is not None:
                    names.append(parsed[0])
    return names


def requirements_lock(app_dir: str) -> str:
    """``requirements-lock.txt``: pipeforge's dependencies and the application's, as installed here."""
    from importlib import metadata

    from .. import __version__

    try:
        metadata.distribution("pipeforge")
    except metadata.PackageNotFoundError:
        raise PipeforgeError(
            "pipeforge is not installed (pip install pipeforge), so there are no versions to pin"
        ) from None
    wanted = _app_requirements(app_dir)
    pins = _pins([("pipeforge", set()), *((name, set()) for name in wanted)])
    pins.pop("pipeforge", None)  # the base image brings pipeforge itself
    missing = [name for name in wanted if _canonical(name) not in pins]
    python = ".".join(str(part) for part in sys.version_info[:3])
    lines = [
        f"# The versions installed with pipeforge {__version__} on Python {python}: the images",
        "# install exactly these. Run pf-dockerize again after upgrading.",
    ]
    if missing:
        lines.append(f"# Not installed here, so not pinned: {', '.join(missing)}.")
    lines += [f"{name}=={version}" for name, version in sorted(pins.values(), key=_sort_key)]
    return "\n".join(lines) + "\n"


def _sort_key(pin: tuple[str, str]) -> str:
    return _canonical(pin[0])
