"""The web service: the Flask app built from a config, and everything it serves.

The rooms: ``app`` assembles the app from the config; the predict service
(``predict_service`` with its ``fields`` and ``model_inputs`` rules, and
``batching``) answers ``/predict``; ``openapi``, ``metrics`` and the
``dashboard`` describe and watch the service (docs/architecture.md).
"""

from .app import (
    UrlRule,
    activate,
    add_url_rule,
    alive,
    create_app,
    delete,
    fit,
    list_models,
    update_model_cache,
)
from .predict_service import PredictService

__all__ = [
    "create_app",
    "PredictService",
    "UrlRule",
    "add_url_rule",
    "alive",
    "list_models",
    "fit",
    "update_model_cache",
    "activate",
    "delete",
]
