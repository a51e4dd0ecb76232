"""The web service: the Flask app built from a config, and everything it serves.

The rooms: ``app`` assembles the app from the config; ``views`` holds the
views, ``routes`` the routes a config adds (and which lifecycle view is
which), ``lifecycle`` the app's state and its background work; every request
enters through the ``front_door``. The predict service (``predict_service``
with its ``fields`` and ``model_inputs`` rules, and ``batching``) answers
``/predict``; ``openapi`` (with ``openapi_operations`` and
``openapi_lifecycle``), ``metrics`` and the ``dashboard`` describe and watch
the service (docs/architecture.md).
"""

from .app import create_app
from .predict_service import PredictService
from .release_views import move_alias, set_traffic
from .routes import UrlRule, add_url_rule
from .views import activate, alive, delete, fit, list_models, update_model_cache

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
    "set_traffic",
    "move_alias",
]
