"""Where fitted models are kept under integer versions, and how they are read back.

The rooms: ``database`` (SQLAlchemy), ``file`` and ``filelike`` are the
persisters; ``tables`` holds the SQL store's tables (its engine comes from
:mod:`pipeforge.sql`); ``chunks`` turns a model into compressed chunks
of bytes and back; ``storage`` holds what the persisters share;
``model_cache`` keeps the active model in memory; ``upgrade`` migrates
stores; ``palladium_stores`` reads the stores Palladium 1.2 wrote (each
persister imports them into its own layout); ``mlflow_models`` serves
MLflow model folders and registries read-only (``mlflow_folder`` reads one
folder, ``mlflow_export`` writes one).
"""

from .database import Database
from .file import File
from .filelike import FileIO, FileLike, FileLikeIO, Rest, RestIO
from .mlflow_models import MLflowModels
from .model_cache import CachedUpdatePersister
from .upgrade import UpgradeSteps

__all__ = [
    "Database",
    "File",
    "CachedUpdatePersister",
    "FileLike",
    "MLflowModels",
    "FileLikeIO",
    "FileIO",
    "Rest",
    "RestIO",
    "UpgradeSteps",
]
