"""Sources filled by someone else at their own rate (a user's thread, another track): the
newest frame wins, goes out as soon as it arrives, and is repeated when nothing new comes."""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import dataclasses
from typing import Any, TypeAlias

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from decart_sync.media.sources._base import VideoSource
from decart_sync.media.sources._convert import (
    PixelFormat,
    check_pixel_format,
    convert_frame,
    fresh_frame,
    needs_conversion,
)
from decart_sync.media.sources._feed import Pacing

__all__ = ["InputFrame", "LatestSource"]

# A frame as it comes in: a user's numpy array (already checked and copied) or an av frame.
InputFrame: TypeAlias = "np.ndarray[Any, Any] | av.VideoFrame"


class LatestSource(VideoSource):
    """A source filled by someone else. The track sends each new frame as it arrives (at most
    at the model's rate), and repeats the last one when nothing new comes."""

    def __init__(self, name: str, pixel_format: PixelFormat = "bgr24") -> None:
        check_pixel_format(pixel_format)
        super().__init__(name, Pacing.ON_ARRIVAL)
        self._pixel_format: str = pixel_format
        # The last frame taken and what it became, so a repeat costs no conversion. Touched
        # only on the loop thread.
        self._converted: _Converted | None = None
        # Set (on the loop) when there is news for the track; one per track, made on its loop.
        self._news: asyncio.Event | None = None

    @abc.abstractmethod
    def _newest(self) -> InputFrame | None:
        """The newest input frame, checked when it came in, or None if none has come yet.
        Non-blocking, on the loop. Raises EndOfStream, BadFrame or SourceFailed."""

    @abc.abstractmethod
    def _has_news(self) -> bool:
        """Whether ``_newest()`` would now say something new: a frame not sent yet, an end, a
        failure. Non-blocking, on the loop."""

    def _track_opened(self) -> None:
        self._news = asyncio.Event()

    def track_ended(self, track: MediaStreamTrack) -> None:
        super().track_ended(track)
        if self._news is not None:
            self._news.set()  # a track waiting for news must see that it has stopped

    def _announce(self) -> None:
        """Wake the track: there is news. Safe from any thread."""
        news = self._news
        if news is not None:  # else no track yet: the first one looks for itself
            self._on_track_loop(news.set)

    async def wait_for_news(self, timeout: float | None) -> bool:
        news = self._news
        if news is None or self._has_news():
            return True
        news.clear()
        if self._has_news():  # it came between the look and the clear
            return True
        try:
            await asyncio.wait_for(news.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return self._has_news()

    async def next_frame(
        self, width: int, height: int, fps: int, executor: concurrent.futures.Executor | None
    ) -> av.VideoFrame | None:
        raw = self._newest()
        if raw is None:
            return None
        cached = self._converted
        if cached is None or cached.raw is not raw or cached.size != (width, height):
            if isinstance(raw, av.VideoFrame) and not needs_conversion(raw, width, height):
                # Someone else's frame (the caller's, the given track's): only copies go out.
                cached = _Converted(raw, (width, height), raw, handed_out=True)
            else:
                loop = asyncio.get_running_loop()
                converted = await loop.run_in_executor(
                    executor, convert_frame, raw, width, height, self._pixel_format
                )
                cached = _Converted(raw, (width, height), converted, handed_out=False)
            self._converted = cached
        if not cached.handed_out:
            # A frame the conversion just made is ours alone: the track may stamp it as is.
            cached.handed_out = True
            return cached.frame
        # A repeat, or a frame others hold: the same picture may go out many times, each
        # time with its own pts, so each time in a new frame object.
        return fresh_frame(cached.frame)


@dataclasses.dataclass(slots=True)
class _Converted:
    """An input frame and the track frame it became at one size."""

    raw: InputFrame
    size: tuple[int, int]
    frame: av.VideoFrame
    handed_out: bool  # whether ``frame`` itself went to a track (or was never ours to give)
