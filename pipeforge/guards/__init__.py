"""Who may call what: the rule for the routes that change state or hand out data, and guards.

- :mod:`.rule`: the table of those routes (:data:`GUARDED_ROUTES`: each off by
  default, switched on by one config key, guarded by one decorator list) and
  :func:`gate`, which the app calls for each route switched on: it refuses to
  build an app with an unguarded route unless the config says so.
- :mod:`.tokens`: :class:`TokenGuard`, the built-in bearer-token guard
  (``pipeforge.guards.require_token`` reads ``PIPEFORGE_TOKENS``).
- :mod:`.same_site`: no cross-site writes (JSON bodies only, foreign origins
  refused) and :func:`action_params`, how a state-changing view reads its
  parameters.

The server's, the online API's and the pipelines' routes all go through
here; docs/security.md is the user's view of it.
"""

from .rule import (
    GUARDED_ROUTES,
    Gate,
    GuardedRoute,
    gate,
    security_of,
    security_settings,
    source_of,
    switched_on,
)
from .same_site import action_params, refuse_body_type, refuse_cross_site, same_site
from .tokens import MIN_TOKEN_LENGTH, TokenGuard, require_token

__all__ = [
    "GUARDED_ROUTES",
    "GuardedRoute",
    "Gate",
    "gate",
    "switched_on",
    "security_settings",
    "security_of",
    "source_of",
    "action_params",
    "refuse_cross_site",
    "refuse_body_type",
    "same_site",
    "TokenGuard",
    "require_token",
    "MIN_TOKEN_LENGTH",
]
