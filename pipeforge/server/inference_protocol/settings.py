"""The ``inference_protocol`` config entry: whether the ``/v2`` routes are on, and model names.

Off unless the config says so::

    inference_protocol: true                 # on; each predict service named by its config key

    inference_protocol:
      enabled: true
      names:                                 # config key of a predict service -> its model name
        predict_service: iris

A mapping is on unless it says ``enabled: false``.

A predict service is the model named by its config key (``predict_service``)
unless ``names`` gives it another name; an online model is named by its
own name (``online_models``, ``pf-online add-model``). A name is 1-100
letters, digits, ``_``, ``.`` or ``-``. Two predict services may not share
a name, nor may a predict service take the name of an online model of the
config (a predict service would hide it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config.keys import check_keys
from ...errors import ConfigError
from ...guards import source_of
from ...online.config import check_name

__all__ = ["KEY", "ProtocolSettings", "read_settings"]

#: the config entry
KEY = "inference_protocol"
_KNOWN = ("enabled", "names")


@dataclass(frozen=True)
class ProtocolSettings:
    """The ``inference_protocol`` entry, checked: on or off, and the predict services' names."""

    enabled: bool = False
    names: dict[str, str] = field(default_factory=dict)  #: predict service key -> model name


def read_settings(config: Mapping[str, Any], services: list[tuple[str, Any]]) -> ProtocolSettings:
    """The checked entry (off when absent); a :class:`ConfigError` naming the key when wrong.

    ``services`` are the app's predict services as ``(config key, service)``.
    """
    value = config.get(KEY, False)
    source = source_of(config, KEY)
    if value is None or value is False:
        return ProtocolSettings()
    if value is True:
        value = {"enabled": True}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"must be true, false or a mapping with {' and/or '.join(_KNOWN)}; got {value!r}",
            source=source,
            key=KEY,
        )
    check_keys(value, _KNOWN, key=KEY, config=config, what="setting")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(
            f"must be true or false; got {enabled!r}", source=source, key=f"{KEY}.enabled"
        )
    given = value.get("names") or {}
    if not isinstance(given, Mapping):
        raise ConfigError(
            f"must map the config key of a predict service to its model name; got {given!r}",
            source=source,
            key=f"{KEY}.names",
        )
    keys = [key for key, _ in services]
    check_keys(given, keys, key=f"{KEY}.names", config=config, what="predict service")
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    online = set(config.get("online_models") or ())
    for key in keys:
        name = given.get(key, key)
        where = f"{KEY}.names.{key}" if key in given else KEY
        problem = check_name(name)
        if problem is None and name in taken:
            problem = f"the predict services {taken[name]!r} and {key!r} are both named {name!r}"
        if problem is None and name in online:
            problem = (
                f"predict service {key!r} is named {name!r}, as an online model of the config; "
                f"give it another name in {KEY}.names"
            )
        if problem is not None:
            raise ConfigError(problem, source=source, key=where)
        names[key] = str(name)
        taken[str(name)] = key
    return ProtocolSettings(enabled, names)
