"""``gunicorn palladium.wsgi:app``: pipeforge's web service for the config in PALLADIUM_CONFIG.

Built at import, like ``pipeforge.wsgi``, on the Flask object that
``palladium.server.app`` names (see pipeforge/palladium_legacy.py).
"""

from pipeforge.palladium_compat.names import module_getattr

app = module_getattr(__name__)("app")
