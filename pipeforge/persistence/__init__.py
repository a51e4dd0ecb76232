"""Where fitted models are kept under integer versions, and how they are read back.

The rooms: ``database`` (SQLAlchemy), ``file`` and ``filelike`` are the
persisters; ``storage`` turns a model into chunks of bytes and back for all of
them; ``model_cache`` keeps the active model in memory; ``upgrade`` migrates
stores; ``palladium_stores`` reads the stores Palladium 1.2 wrote.
"""

from .database import Database
from .file import File
from .filelike import FileIO, FileLike, FileLikeIO, Rest, RestIO
from .model_cache import CachedUpdatePersister
from .upgrade import UpgradeSteps

__all__ = [
    "Database",
    "File",
    "CachedUpdatePersister",
    "FileLike",
    "FileLikeIO",
    "FileIO",
    "Rest",
    "RestIO",
    "UpgradeSteps",
]
