"""Deleting a stored model the way ``pf-admin delete`` and the ``/delete`` route do.

Deleting the active version leaves every server with no model to serve
(each model cache notices within one refresh and answers 503), so it is
refused unless forced: :func:`delete_version` raises
:class:`~pipeforge.errors.ActiveModelError` (409 over HTTP, exit status 1
for the script) naming the version and how to force it. Deleting any other
version needs no force.
"""

from __future__ import annotations

from typing import Any

from ..errors import ActiveModelError
from ..release.aliases import aliases_in
from .storage import as_version

__all__ = ["delete_version"]


def delete_version(persister: Any, version: int | str, *, force: bool = False) -> None:
    """Delete ``version`` from ``persister`` (a ``ModelPersister``).

    The active version is deleted only with ``force``. An unknown version
    raises the persister's :class:`~pipeforge.errors.UnknownVersionError`.
    """
    number = as_version(version)
    if not force and number is not None:
        properties = persister.list_properties()
        active = properties.get("active-model")
        if active is not None and active == str(number):
            raise ActiveModelError(
                f"model version {number} is the active model: deleting it leaves the service "
                "with no model to serve; activate another version first, or delete it anyway "
                'with pf-admin delete --force (or "force": true in the body of /delete)'
            )
        named = [name for name, v in aliases_in(properties).items() if v == number]
        if named:
            raise ActiveModelError(
                f"model version {number} carries the alias {', '.join(named)}: deleting it "
                "leaves the services that serve that alias without a model; move the alias "
                "first (pf-admin alias NAME VERSION), or delete it anyway with --force"
            )
    persister.delete(version)
