"""A background loop that lives as long as a block: started when the block starts,
cancelled and awaited when it ends (the periodic jobs' cleanup contexts)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def running(job: Coroutine[Any, Any, None] | None, name: str) -> AsyncIterator[None]:
    """Run ``job`` as a task named ``name`` while the block runs (``None``: nothing to
    run, e.g. a job switched off by its setting); then cancel it and wait for it."""
    task = None if job is None else asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
