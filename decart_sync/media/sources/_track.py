"""The loop-side adapter that turns any video source into an aiortc track for one peer connection.

A :class:`SourceTrack` lives on the SDK's loop thread. Each ``recv()`` gets one frame from its
source, already at the model's size in yuv420p (the source reads and converts in the executor
the track was given, never on the loop), and stamps it with a presentation time on the 90 kHz
clock. A frame goes out as soon as it is there, as long as the model's frame rate is kept
(:class:`Pacer`), in one of three ways chosen by the source's :class:`Pacing`: a file or a
generator is read ahead and waits for the rate (``READ_AHEAD``), a camera or the test pattern is
read when its frame is due (``WHEN_DUE``), and a frame that others push (a ``PushSource``, a
user's track) goes out when it arrives (``ON_ARRIVAL``). A frame from a live input never waits
for the next slot of a fixed grid, which would add half a frame interval on average.

Sources plug in through the small :class:`FrameFeed` protocol; this module knows nothing about
files, cameras or numpy producers, only about pacing, stamping and ending cleanly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import Executor
from typing import NoReturn

import av
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
    MediaStreamTrack,
)

from decart_sync._redact import get_logger
from decart_sync.errors import DecartSDKError, InvalidInputError
from decart_sync.media.sources._feed import (
    BadFrame,
    EndOfStream,
    FrameFeed,
    Pacing,
    SourceFailed,
)

__all__ = ["Pacer", "SourceTrack"]

_log = get_logger(__name__)

ErrorCallback = Callable[[DecartSDKError], None]


class Pacer:
    """When a track's frames go out, and their pts.

    A frame goes out as soon as it is there, as long as the model's frame rate is kept on
    average: the cap is a virtual schedule that moves one interval per frame sent (GCRA, as in
    ATM traffic shaping), and a frame may go out up to ``TOLERANCE`` intervals ahead of it. The
    tolerance is what keeps a producer at the model's rate, whose frames the loop takes a
    little late now and then, from drifting behind: a cap counted from each actual send would
    carry every such delay into all later frames until one was dropped. For a source that others
    fill, when nothing new arrives for ``REPEAT_AFTER`` intervals the last frame goes out again,
    so the stream never stalls. The pts is the time the frame was taken on the 90 kHz clock, at
    least one frame step after the previous pts (encoders want strictly increasing stamps).
    """

    TOLERANCE = 0.25
    REPEAT_AFTER = 2.0

    def __init__(self, fps: int) -> None:
        self.interval = 1.0 / fps
        self._step = math.ceil(VIDEO_CLOCK_RATE / fps)
        self._start: float | None = None
        self._scheduled: float | None = None  # where the schedule puts the next frame
        self._last_sent: float | None = None
        self._last_pts = 0

    def not_before(self) -> float | None:
        """The earliest time the next frame may go out (None: any time)."""
        if self._scheduled is None:
            return None
        return self._scheduled - self.TOLERANCE * self.interval

    def repeat_at(self) -> float | None:
        """When the last frame goes out again if nothing new came (None: nothing sent yet)."""
        if self._last_sent is None:
            return None
        return self._last_sent + self.REPEAT_AFTER * self.interval

    def stamp(self, now: float) -> int:
        """The pts of a frame taken at ``now``; records it as sent."""
        if self._start is None:
            self._start, pts = now, 0
        else:
            pts = max(round((now - self._start) * VIDEO_CLOCK_RATE), self._last_pts + self._step)
        scheduled = now if self._scheduled is None else max(self._scheduled, now)
        self._scheduled = scheduled + self.interval
        self._last_sent, self._last_pts = now, pts
        return pts


class _EndedFeed:
    """What a stopped track reads from instead of its source: nothing, ever."""

    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing

    async def wait_for_news(self, timeout: float | None) -> bool:
        return True

    async def next_frame(
        self, width: int, height: int, fps: int, executor: Executor | None
    ) -> av.VideoFrame | None:
        raise EndOfStream

    def frame_sent(self) -> None:
        pass

    def track_ended(self, track: MediaStreamTrack) -> None:
        pass


class SourceTrack(MediaStreamTrack):
    """An aiortc video track fed by one source, paced to ``fps``, at ``width`` x ``height``."""

    kind = "video"

    def __init__(
        self,
        feed: FrameFeed,
        *,
        width: int,
        height: int,
        fps: int,
        executor: Executor | None,
        on_error: ErrorCallback | None,
        name: str,
    ) -> None:
        super().__init__()
        self._feed = feed
        self._width = width
        self._height = height
        self._fps = fps
        self._executor = executor
        self._on_error = on_error
        self._name = name
        self._pacer = Pacer(fps)
        self._reported: set[str] = set()
        receivers = {
            Pacing.READ_AHEAD: self._recv_read_ahead,
            Pacing.WHEN_DUE: self._recv_when_due,
            Pacing.ON_ARRIVAL: self._recv_on_arrival,
        }
        self._receive = receivers[feed.pacing]

    def __repr__(self) -> str:
        return (
            f"<SourceTrack {self._name} {self._width}x{self._height}@{self._fps} {self.readyState}>"
        )

    async def recv(self) -> av.VideoFrame:
        return await self._receive()

    async def _recv_read_ahead(self) -> av.VideoFrame:
        """Read the next frame, then send it as soon as the rate allows (a read that blocked on
        a live input has already waited)."""
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self._fetch()
            if frame is None:
                continue
            await self._wait_for_rate(loop)
            return self._stamped(frame, self._pacer.stamp(loop.time()))

    async def _recv_when_due(self) -> av.VideoFrame:
        """Once the rate allows another frame, read it (a camera's read waits for the device's
        next frame if none is queued) and send it at once."""
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._wait_for_rate(loop)
            frame = await self._fetch()
            if frame is None:
                continue
            return self._stamped(frame, self._pacer.stamp(loop.time()))

    async def _recv_on_arrival(self) -> av.VideoFrame:
        """Wait for the source's news (a new frame, an end) or the time to repeat the last
        frame, and send at once, as the rate allows."""
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._wait_for_rate(loop)
            repeat_at = self._pacer.repeat_at()
            timeout = None if repeat_at is None else max(0.0, repeat_at - loop.time())
            news = await self._feed.wait_for_news(timeout)
            if not news and repeat_at is not None and loop.time() < repeat_at:
                continue  # woken for nothing (a stop, a replaced track): look again
            # Paced and stamped by when the frame is taken, not when its conversion is done,
            # so the conversion's time never counts against the rate.
            taken_at = loop.time()
            frame = await self._fetch()
            if frame is None:
                continue
            return self._stamped(frame, self._pacer.stamp(taken_at))

    async def _wait_for_rate(self, loop: asyncio.AbstractEventLoop) -> None:
        not_before = self._pacer.not_before()
        if not_before is not None and not_before > loop.time():
            await asyncio.sleep(not_before - loop.time())

    def _stamped(self, frame: av.VideoFrame, pts: int) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self._feed.frame_sent()
        return frame

    def stop(self) -> None:
        super().stop()
        # The peer connection may keep a stopped track until the cycle collector runs; the
        # source (and the frames it holds) and the error callback's owner are let go now.
        feed = self._feed
        self._feed = _EndedFeed(feed.pacing)
        self._on_error = None
        feed.track_ended(self)

    async def _fetch(self) -> av.VideoFrame | None:
        """One frame from the feed; None when there is none to send this time."""
        try:
            return await self._feed.next_frame(self._width, self._height, self._fps, self._executor)
        except EndOfStream:
            self._end()
        except SourceFailed as failure:
            self._report(failure.error)
            self._end()
        except BadFrame as bad:
            if bad.key not in self._reported:
                self._reported.add(bad.key)
                self._report(InvalidInputError(f"skipped a video frame from {self._name}: {bad}"))
            return None
        except RuntimeError as error:
            # An executor that is shutting down refuses new work: the session is closing.
            if "shutdown" not in str(error):
                raise
            self._end()

    def _end(self) -> NoReturn:
        self.stop()
        raise MediaStreamError

    def _report(self, error: DecartSDKError) -> None:
        _log.warning("%s", error.message)
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:
            _log.exception("the media error callback raised")
