"""Configuration: from files (or dicts) to a :class:`Config` of built components.

The rooms, in the order a configuration passes through them:

- ``files``: reading one ``.py``/YAML/JSON file, ``${VAR}`` interpolation,
  where the files are (``PIPEFORGE_CONFIG``) and how relative paths resolve;
- ``copies``: ``__copy__`` resolved against the merged files' layers;
- ``keys``: the top-level keys pipeforge reads (one table) and the check
  that names a misspelt key with the closest known one;
- ``building``: ``__python__``, ``__factory__`` with ``__mode__``, and
  ``initialize_component``;
- ``mapping``: the :class:`Config` dict itself, which can build entries lazily;
- ``loading``: :func:`process_config` (dicts already read) and
  :func:`load_config` (files), the one place the phases are put in order;
- ``current``: the process-wide configuration behind :func:`get_config` and
  :func:`initialize_config`. pipeforge passes its config explicitly
  everywhere else; this one exists because Palladium's API (and Palladium
  users' code) reaches the running program's configuration through
  ``get_config()``.
"""

from .building import FACTORY_KEYS
from .current import apply_logging, get_config, initialize_config
from .files import config_paths_from_env
from .loading import load_config, process_config
from .mapping import Config

__all__ = [
    "Config",
    "load_config",
    "process_config",
    "get_config",
    "initialize_config",
    "apply_logging",
    "config_paths_from_env",
    "FACTORY_KEYS",
]
