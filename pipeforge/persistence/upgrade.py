"""A registry of upgrade steps for model stores.

A store records the format version it was written with (``db-version`` in
its properties). When pipeforge changes a store's layout, it registers a
step under the version that introduced the change; ``pf-upgrade`` then
runs every step between the store's version and the running one, oldest
first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, UsageError

__all__ = ["UpgradeSteps", "parse_version", "check_target", "new_stamp"]

logger = logging.getLogger(__name__)


def parse_version(version: str | int) -> tuple[int, ...]:
    """``'1.2.3'`` → ``(1, 2, 3)``; pre-release suffixes (``'1.0rc1'``) are dropped."""
    text = str(version).strip()
    parts = []
    for piece in text.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    if not parts:
        raise ConfigError(f"a version must look like '1.2.3'; got {version!r} instead")
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_target(to_version: str | None, installed: str) -> str:
    """The version to upgrade to; refuses one newer than the installed pipeforge.

    A store stamped with a version pipeforge does not know yet would skip
    that version's real upgrade step later.
    """
    if to_version is None:
        return installed
    if parse_version(to_version) > parse_version(installed):
        raise UsageError(
            f"cannot upgrade the model store to {to_version}: the installed pipeforge is "
            f"{installed}; install pipeforge {to_version} or newer first, or leave out --to"
        )
    return str(to_version)


def new_stamp(recorded: str | None, target: str) -> str | None:
    """The store version to record after upgrading to ``target``; ``None`` keeps ``recorded``.

    A store is never stamped lower than it is (``--to`` below its version
    only runs those steps again).
    """
    if recorded is not None and parse_version(target) <= parse_version(recorded):
        return None
    return target


class UpgradeSteps:
    """Upgrade steps keyed by the version they upgrade *to*.

    Register with the :meth:`add` decorator::

        steps = UpgradeSteps()

        @steps.add("0.2")
        def add_chunk_count(persister):
            ...

    A step receives whatever object :meth:`run` is given (the persister, a
    connection, ...).
    """

    def __init__(self) -> None:
        self._steps: list[tuple[tuple[int, ...], str, Callable[..., Any]]] = []

    def add(self, version: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a step that brings a store to ``version``."""
        key = parse_version(version)

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self._steps.append((key, str(version), func))
            self._steps.sort(key=lambda step: step[0])
            return func

        return register

    def versions(self) -> list[str]:
        """The versions that have a step, oldest first."""
        return [version for _, version, _ in self._steps]

    def select(self, from_version: str, to_version: str) -> list[tuple[str, Callable[..., Any]]]:
        """The steps with ``from_version < version <= to_version``, oldest first."""
        low, high = parse_version(from_version), parse_version(to_version)
        return [(version, func) for key, version, func in self._steps if low < key <= high]

    def run(self, target: Any, from_version: str, to_version: str) -> list[str]:
        """Run the steps between the two versions on ``target``; return their versions."""
        ran = []
        for version, func in self.select(from_version, to_version):
            logger.info("upgrade step %s (%s) running", version, func.__name__)
            func(target)
            ran.append(version)
        return ran
