"""A LiveKit video track read as RGB pictures, for the drivers that run the ``livekit`` SDK (ours,
and the one of Decart's official client, whose side venv holds numpy and ``livekit`` too)."""

from __future__ import annotations

import asyncio

import numpy as np
from livekit import rtc


class TrackPictures:
    """Reads each video track given to :meth:`read` until :meth:`close`, keeping the latest
    picture (HxWx3 RGB) and how many arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.latest: np.ndarray | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def read(self, track: rtc.Track) -> None:
        self._tasks.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: rtc.Track) -> None:
        async for event in rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24):
            frame = event.frame
            pixels = np.frombuffer(frame.data, dtype=np.uint8)
            self.latest = pixels.reshape(frame.height, frame.width, 3).copy()
            self.count += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
