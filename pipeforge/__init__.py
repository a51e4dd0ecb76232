"""pipeforge: from a configuration file to a trained, tested, versioned and served model.

Importing the package is cheap on purpose (``pf-version`` must start fast):
the heavy modules load when first used.
"""

from . import moved_modules as _moved_modules
from .errors import (
    ConfigError,
    DataError,
    MissingKeyError,
    ModelWriteError,
    NoModelError,
    PersistenceError,
    PipeforgeError,
    PredictError,
    RequestError,
    UnknownVersionError,
    UnmigratedStoreError,
    UsageError,
    VersionError,
)

__version__ = "0.1.0"

# Module names of the flat 0.1 layout keep working (pipeforge/moved_modules.py).
_moved_modules.install()

__all__ = [
    "__version__",
    "PipeforgeError",
    "ConfigError",
    "MissingKeyError",
    "UsageError",
    "PersistenceError",
    "UnknownVersionError",
    "NoModelError",
    "UnmigratedStoreError",
    "ModelWriteError",
    "DataError",
    "PredictError",
    "RequestError",
    "VersionError",
]
