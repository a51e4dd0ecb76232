"""The routes that change what a released service answers: ``/traffic`` and ``/alias``.

Both are lifecycle views (off until ``flask_add_url_rules`` adds them,
guarded like ``/activate``: docs/security.md), take a JSON object and
refresh this process's model cache (the model persister does, when it is
one), so the worker that answered follows at once and the others within
one refresh.

- ``POST /traffic`` ``{"service": "/predict", "traffic": {"champion": 90,
  "challenger": 10}}``: store the split of a service that has ``traffic``
  in its config (``"traffic": null`` goes back to the config's);
- ``POST /alias`` ``{"alias": "champion", "model_version": 3}`` moves an
  alias (``"model_version"`` may be another alias), ``{"alias":
  "challenger", "delete": true}`` removes one, and ``{"alias": "champion",
  "promote": "challenger", "min_feedback": 200, "margin": 0.01}`` promotes
  on evidence (409 with the reason when it is short).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import guards, web
from ..errors import RequestError
from ..jobs import require
from ..release import aliases as release_aliases
from ..release.promotion import evidence, promote
from ..release.routing import split_problem
from .fields import to_bool, to_float, to_int
from .lifecycle import current_state
from .routes import lifecycle_view

if TYPE_CHECKING:
    from flask import Response

__all__ = ["set_traffic", "move_alias"]


def _text(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value:
        raise RequestError(f"missing request parameter {name!r} (a JSON string)")
    return value


@lifecycle_view("set_traffic")
def set_traffic() -> Response:
    """``/traffic``: store a service's canary split (``null``: back to the config's)."""
    from werkzeug.exceptions import NotFound

    state = current_state()
    values = guards.action_params(("service", "traffic"))
    entry_point = _text(values, "service")
    if "traffic" not in values:
        raise RequestError("missing request parameter 'traffic' (an object, or null)")
    served = {getattr(s, "entry_point", None): (k, s) for k, s in state.services}
    if entry_point not in served:
        raise NotFound(f"no predict service at {entry_point!r}")
    key, service = served[entry_point]
    problem = split_problem(key, service, entry_point)
    if problem is not None:
        raise RequestError(problem)
    weights = values["traffic"]
    if weights is not None and not isinstance(weights, Mapping):
        raise RequestError("'traffic' must be an object of alias: weight, or null")
    persister = require(state.config, "model_persister")
    split = release_aliases.set_traffic(persister, entry_point, weights)
    return web.json_response(
        {
            "service": entry_point,
            "traffic": split if split is not None else service.traffic,
            "stored": split is not None,
            "metadata": web.ok_metadata(state.service_metadata),
        }
    )


@lifecycle_view("move_alias")
def move_alias() -> Response:
    """``/alias``: move, remove or promote an alias."""
    state = current_state()
    names = ("alias", "model_version", "delete", "promote", "min_feedback", "margin")
    values = guards.action_params(names)
    alias = _text(values, "alias")
    persister = require(state.config, "model_persister")
    body: dict[str, Any] = {"alias": alias}
    if "delete" in values and to_bool("delete", values["delete"]):
        body["previous"] = release_aliases.delete_alias(persister, alias)
        body["model_version"] = None
    elif values.get("promote") is not None:
        source = _text(values, "promote")
        least = values.get("min_feedback")
        margin = values.get("margin")
        wanted = least is not None or margin is not None
        decision = promote(
            persister,
            source,
            alias,
            scores=evidence(state.config, persister) if wanted else None,
            min_feedback=None if least is None else to_int("min_feedback", least),
            margin=None if margin is None else to_float("margin", margin),
        )
        body.update(decision.as_dict(), model_version=decision.version)
    else:
        raw = values.get("model_version")
        if raw is None:
            raise RequestError(
                "missing request parameter 'model_version' (or 'delete': true, or 'promote')"
            )
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise RequestError(f"'model_version' must be a version or an alias; got {raw!r}")
        body["previous"] = release_aliases.aliases(persister).get(alias)
        body["model_version"] = release_aliases.set_alias(persister, alias, raw)
    body["metadata"] = web.ok_metadata(state.service_metadata)
    return web.json_response(body)
