"""Which alias answers a request to a predict service: its alias, its canary split, the request.

A predict service's release parameters (checked here, once, when the
server is built; a wrong one is a :class:`~pipeforge.errors.ConfigError`
naming the service's key and the parameter):

- ``model_alias: challenger``: every request is answered by that alias's
  version (default: ``active``, the active version);
- ``traffic: {champion: 90, challenger: 10}``: each request goes to one of
  the aliases, with a chance proportional to its weight. A split stored
  with ``pf-admin traffic`` (or the ``/traffic`` route) wins over the
  config's, and every worker follows it within one refresh of its model
  cache. An alias that no version carries gets no requests;
- ``sticky_key: X-User-ID``: with a split, a request carrying this key
  goes to the arm its key's hash picks (BLAKE2b of the value, so every
  worker and host picks the same), so one caller always meets one version
  while the weights stay the same. The key is the request header of that
  name, or else the query parameter of that name; a request without it is
  routed at random;
- ``alias_from_request: true`` (or a list of aliases): a request may ask
  for an alias itself, with the ``X-Model-Alias`` header or the
  ``model_alias`` query parameter; ``true`` allows every alias of the
  store, a list only those. Without it, both are ignored.

With ``strict: true`` on the service, use the headers: a query parameter
the service's mapping does not know is refused there.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, NoModelError, RequestError
from .aliases import ACTIVE, alias_problem, alias_version, traffic_in, weights_problem

__all__ = [
    "ALIAS_HEADER",
    "ALIAS_PARAMETER",
    "Routing",
    "routing_for",
    "split_problem",
    "sticky_fraction",
]

ALIAS_HEADER = "X-Model-Alias"  #: the header a request asks for an alias with
ALIAS_PARAMETER = "model_alias"  #: the query parameter a request asks for an alias with


def sticky_fraction(key: str, value: str) -> float:
    """Where the caller ``value`` of sticky key ``key`` falls in [0, 1): the same on every host."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8, key=key.encode("utf-8")[:64])
    return int.from_bytes(digest.digest(), "big") / 2.0**64


def split_problem(key: str, service: Any, entry_point: str) -> str | None:
    """Why a stored traffic split cannot be set for ``service`` (``None``: it can).

    Only a service with ``traffic`` in its config follows a stored split, so
    ``pf-admin traffic`` and ``POST /traffic`` refuse the others alike.
    """
    if getattr(service, "traffic", None) is not None:
        return None
    return (
        f"the service at {entry_point} has no traffic split in its config ({key}.traffic); "
        "a stored split is followed only by a service that has one"
    )


@dataclass
class Routing:
    """A predict service's release settings, checked: picks the alias for each request."""

    entry_point: str
    model_alias: str | None = None
    traffic: dict[str, float] | None = None
    sticky_key: str | None = None
    allowed: frozenset[str] | None = None  #: aliases a request may ask for (``None``: any)
    from_request: bool = False
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def served(self) -> set[str]:
        """The aliases the model cache must hold for this service (besides stored splits)."""
        names = set(self.traffic or ())
        if self.model_alias:
            names.add(self.model_alias)
        if self.allowed:
            names.update(self.allowed)
        return names

    def asked(self, request: Any) -> str | None:
        """The alias ``request`` asks for (``None``: none, or the service does not allow it)."""
        if not self.from_request:
            return None
        name = request.headers.get(ALIAS_HEADER) or request.args.get(ALIAS_PARAMETER)
        if not name:
            return None
        problem = alias_problem(name)
        if problem:
            raise RequestError(f"{ALIAS_HEADER}: {problem}")
        if self.allowed is not None and name not in self.allowed and name != ACTIVE:
            raise RequestError(
                f"this service answers the aliases {', '.join(sorted(self.allowed))} on request; "
                f"got {name!r}"
            )
        return name

    def weights(self, properties: Mapping[str, Any] | None) -> dict[str, float] | None:
        """The split in force: the stored one, else the config's (``None``: no split)."""
        stored = traffic_in(properties, self.entry_point) if properties is not None else None
        return stored if stored is not None else self.traffic

    def pick(self, request: Any, properties: Mapping[str, Any] | None) -> tuple[str, bool]:
        """``(alias, by the split)`` for ``request``; ``properties``: the store's, if known."""
        asked = self.asked(request)
        if asked is not None:
            return asked, False
        weights = self.weights(properties)
        if not weights:
            return self.model_alias or ACTIVE, False
        arms = [
            (name, weight)
            for name, weight in sorted(weights.items())
            if weight > 0 and (properties is None or alias_version(properties, name) is not None)
        ]
        if not arms:
            raise NoModelError(
                f"no version carries any alias of the traffic split of {self.entry_point} "
                f"({', '.join(sorted(weights))}); set one with pf-admin alias NAME VERSION"
            )
        point = None
        if self.sticky_key:
            value = request.headers.get(self.sticky_key) or request.args.get(self.sticky_key)
            if value:
                point = sticky_fraction(self.sticky_key, value)
        if point is None:
            point = self._random.random()
        total = sum(w for _, w in arms)
        bound = 0.0
        for name, weight in arms:
            bound += weight / total
            if point < bound:
                return name, True
        return arms[-1][0], True


def _bad(key: str, parameter: str, problem: str, config: Any) -> ConfigError:
    from ..guards import source_of

    return ConfigError(
        f"parameter {parameter!r} of PredictService: {problem}",
        source=source_of(config, key),
        key=f"{key}.{parameter}",
    )


def routing_for(key: str, service: Any, config: Mapping[str, Any]) -> Routing | None:
    """The checked release routing of the service at config key ``key`` (``None``: it has none)."""
    model_alias = getattr(service, "model_alias", None)
    traffic = getattr(service, "traffic", None)
    sticky_key = getattr(service, "sticky_key", None)
    from_request = getattr(service, "alias_from_request", False)
    if model_alias is None and traffic is None and sticky_key is None and not from_request:
        return None
    if model_alias is not None and alias_problem(model_alias):
        raise _bad(key, "model_alias", str(alias_problem(model_alias)), config)
    if traffic is not None:
        problem = weights_problem(traffic)
        if problem:
            raise _bad(key, "traffic", problem, config)
        if model_alias is not None:
            raise _bad(
                key, "traffic", "a service has either model_alias or traffic, not both", config
            )
    if sticky_key is not None:
        if not isinstance(sticky_key, str) or not sticky_key.strip():
            raise _bad(key, "sticky_key", f"must be a header name; got {sticky_key!r}", config)
        if traffic is None:
            raise _bad(key, "sticky_key", "needs a traffic split (traffic: {...})", config)
    allowed: frozenset[str] | None = None
    if isinstance(from_request, list | tuple):
        for name in from_request:
            if alias_problem(name):
                raise _bad(key, "alias_from_request", str(alias_problem(name)), config)
        allowed, from_request = frozenset(from_request), True
    elif not isinstance(from_request, bool):
        raise _bad(
            key,
            "alias_from_request",
            f"must be true, false or a list of aliases; got {from_request!r}",
            config,
        )
    return Routing(
        entry_point=getattr(service, "entry_point", "/predict"),
        model_alias=model_alias,
        traffic={str(k): float(v) for k, v in traffic.items()} if traffic else None,
        sticky_key=sticky_key,
        allowed=allowed,
        from_request=from_request,
    )
