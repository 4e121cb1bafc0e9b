"""Every typed key of the application, declared together (no string keys anywhere)."""

from __future__ import annotations

from aiohttp import web

from policies.principal import Principal

# Per-request values, set by middlewares and read by handlers.
REQUEST_ID_KEY = web.RequestKey("request_id", str)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
AUDIT_ID_KEY = web.RequestKey("audit_id", str)
