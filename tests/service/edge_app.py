"""A bare aiohttp application behind the gateway's one middleware (service/edge.py), with
the app keys it reads (settings, metrics, lifecycle), for tests of the edge alone."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from service.demo_settings import demo_settings
from service.edge import edge_middleware
from service.keys import LIFECYCLE_KEY, METRICS_KEY, SETTINGS_KEY
from service.metrics import Metrics
from service.registry import SYSTEMS
from service.shutdown import Lifecycle

#: the app's temporary state directory (removed on the app's cleanup)
STATE_DIR_KEY = web.AppKey("edge_app_state_dir", Path)


def edge_app(**kwargs: object) -> web.Application:
    """``web.Application(middlewares=[edge_middleware], **kwargs)``, ready to route; its
    state directory (a pseudonym key is written there) goes with the app's cleanup."""
    state_dir = Path(tempfile.mkdtemp(prefix="edge-app-"))
    settings = demo_settings(
        port=0,
        state_dir=state_dir,
        upstream_urls={system: "http://127.0.0.1:9" for system in SYSTEMS},
        audit_url="sqlite+aiosqlite:///unused.db",
        master_key=b"m" * 32,
        signing_key=b"s" * 32,
    )
    app = web.Application(middlewares=[edge_middleware], **kwargs)  # type: ignore[arg-type]
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = Metrics(CollectorRegistry(), systems=settings.upstreams)
    app[LIFECYCLE_KEY] = Lifecycle()
    app[STATE_DIR_KEY] = state_dir

    async def remove_state_dir(_app: web.Application) -> None:
        shutil.rmtree(state_dir, ignore_errors=True)

    app.on_cleanup.append(remove_state_dir)
    return app
