"""Asyncio helpers the client and the emulator share: tasks a component owns, and reading a
track to its end.

A component (a connection, a session, a pipeline) starts background tasks that must end with it;
:class:`TaskSet` keeps them, names them, and cancels them all on close. A remote track must
always be read, or aiortc queues its frames without bound: :func:`read_track` reads one to its
end and hands each frame on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class TaskSet:
    """The background tasks of one component. Use on its loop only."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` as ``{prefix}-{what}`` until it returns or the set is cancelled."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self._prefix}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self, timeout: float | None = None) -> None:
        """Cancel every task but the caller's own and wait for them (at most ``timeout``)."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)


async def read_track(
    track: MediaStreamTrack, on_frame: Callable[[Any], None] | None = None
) -> None:
    """Read ``track`` until it ends, handing each frame to ``on_frame`` (None: drop them)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if on_frame is not None:
            on_frame(frame)
