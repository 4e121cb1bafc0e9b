"""Every typed key of the application, declared together (no string keys anywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from policies.principal import Principal

# Per-request values, set by middlewares and read by handlers.
REQUEST_ID_KEY = web.RequestKey("request_id", str)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
AUDIT_ID_KEY = web.RequestKey("audit_id", str)

# Application-wide state, each owned by one cleanup context in service.app.
# Declared with forward-referenced types to keep this module free of import cycles.
if TYPE_CHECKING:
    from audit import AuditLog
    from service.auth import Authenticator
    from service.caller_limits import CallerLimiter
    from service.gateway import Gateway
    from service.metrics import Metrics
    from service.openapi_gen import OpenApiCache
    from service.reload import PolicyReloader
    from service.settings import Settings
    from service.shutdown import Lifecycle
    from service.upstreams import Connector

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings")
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics")
AUTH_KEY: web.AppKey[Authenticator] = web.AppKey("authenticator")
# the policy set in force: read ``.engine`` once per request (it may be swapped)
POLICIES_KEY: web.AppKey[PolicyReloader] = web.AppKey("policies")
LIFECYCLE_KEY: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
AUDIT_KEY: web.AppKey[AuditLog] = web.AppKey("audit_log")
CONNECTORS_KEY: web.AppKey[Mapping[str, Connector]] = web.AppKey("connectors")
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway")
CALLER_LIMITER_KEY: web.AppKey[CallerLimiter] = web.AppKey("caller_limiter")
OPENAPI_KEY: web.AppKey[OpenApiCache] = web.AppKey("openapi_document")
