"""pipeforge: from a configuration file to a trained, tested, versioned and served model.

Importing the package is cheap on purpose (``pf-version`` must start fast):
the heavy modules load when first used.
"""

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
