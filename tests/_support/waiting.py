"""Waiting inside a coroutine: the async twin of ``decart_sync.testing.wait_until``, for tests
and drivers whose condition is met by the event loop they run on (blocking it would stop the
very thing they wait for). Standard library only: the LiveKit drivers import it in side venvs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "", poll: float = 0.005
) -> None:
    """Return once ``predicate()`` is true; raise AssertionError naming ``what`` after
    ``timeout`` seconds. The loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(poll)
