"""The loop-side adapter that turns any video source into an aiortc track for one peer connection.

A :class:`SourceTrack` lives on the SDK's loop thread. Each ``recv()`` gets one frame from its
source (a blocking read runs in the executor it was given, never on the loop), converts it to the
model's size in yuv420p (also in the executor), and stamps it with a presentation time on the
90 kHz clock. A frame goes out as soon as it is there, as long as the model's frame rate is kept
(:class:`Pacer`): a file or a generator is read ahead and waits for the rate, the test pattern
is drawn when its frame is due, and a frame from a live input (a camera, a ``PushSource``, a
blocking capture) goes out when it arrives instead of waiting for the next slot of a fixed grid,
which would add half a frame interval on average.

Sources plug in through the small :class:`FrameFeed` protocol; this module knows nothing about
files, cameras or numpy producers, only about pacing, conversion and ending cleanly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from concurrent.futures import Executor
from typing import NoReturn, Protocol

import av
import numpy as np
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
    MediaStreamTrack,
)

from decart_sync._redact import get_logger
from decart_sync.errors import DecartSDKError, InvalidInputError

__all__ = [
    "BadFrame",
    "EndOfStream",
    "FrameFeed",
    "Pacer",
    "SourceFailed",
    "SourceTrack",
    "frame_problem",
    "fresh_frame",
    "to_track_frame",
]

logger = get_logger(__name__)

ErrorCallback = Callable[[DecartSDKError], None]

# Pixel layouts a numpy frame may come in, and the word users know them by.
PIXEL_FORMATS = {"bgr24": "BGR", "rgb24": "RGB"}


class EndOfStream(Exception):
    """The source has no more frames: a normal end, not an error."""


class BadFrame(Exception):
    """One frame could not be used; the track skips it and carries on.

    ``key`` names the kind of problem, so each kind is reported once rather than once per frame.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class SourceFailed(Exception):
    """The source broke (its reader raised, a device vanished). The track reports and ends."""

    def __init__(self, error: DecartSDKError) -> None:
        super().__init__(error.message)
        self.error = error


class FrameFeed(Protocol):
    """What a track needs from its source (VideoSource implements it)."""

    # True: read once the rate allows a frame, and send what the read returns at once: the
    # newest frame a live device has (the read waits for the device if nothing is queued), or
    # a picture drawn for now (the test pattern).
    # False: read the next frame ahead, then send it once the rate allows (files, generators,
    # captures: a blocking read of a live input has done its waiting already).
    @property
    def _reads_when_due(self) -> bool: ...

    # True: the source is filled by others and tells the track when a frame arrives
    # (:meth:`_wait_for_news`); the track sends it at once, as the rate allows.
    @property
    def _sends_on_arrival(self) -> bool: ...

    async def _wait_for_news(self, timeout: float | None) -> bool:
        """For a source that sends on arrival: wait until the next ``_next_frame()`` has
        something new to say (a frame not sent yet, an end, a failure) and return True, or
        return False after ``timeout`` seconds (None: no limit) or when woken for nothing."""
        ...

    async def _next_frame(
        self, width: int, height: int, fps: int, executor: Executor | None
    ) -> av.VideoFrame | None:
        """The next frame at ``width`` x ``height`` in yuv420p, or None if there is nothing to
        send yet. Raises EndOfStream, BadFrame or SourceFailed."""
        ...

    def _frame_sent(self) -> None:
        """Count one frame handed to the peer connection."""
        ...

    def _track_ended(self, track: SourceTrack) -> None:
        """The track stopped; the source forgets it."""
        ...


def frame_problem(frame: object, pixel_format: str = "bgr24") -> tuple[str, str] | None:
    """Why ``frame`` cannot be sent, as ``(kind, message)``, or None if it can.

    Any height and width are fine (frames are resized); the layout must be HxWx3 uint8.
    """
    if isinstance(frame, av.VideoFrame):
        return None
    expected = f"expected an HxWx3 uint8 {PIXEL_FORMATS[pixel_format]} numpy array"
    if not isinstance(frame, np.ndarray):
        kind = type(frame).__name__
        return f"type={kind}", f"{expected} (or an av.VideoFrame), got {kind}"
    got = f"got a {frame.dtype} array of shape {frame.shape}"
    if frame.ndim != 3:
        return f"ndim={frame.ndim}", f"{expected}, {got}"
    if frame.shape[2] != 3:
        return f"channels={frame.shape[2]}", f"{expected}, {got}"
    if frame.dtype != np.uint8:
        return f"dtype={frame.dtype}", f"{expected}, {got}"
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        return "empty", f"{expected}, {got}"
    return None


def to_track_frame(
    frame: object, width: int, height: int, pixel_format: str = "bgr24"
) -> av.VideoFrame:
    """``frame`` (numpy HxWx3 uint8 or av.VideoFrame) as a new ``width`` x ``height`` yuv420p
    frame that the track may stamp.

    Blocking (swscale runs here, releasing the GIL): call it in an executor, not on the loop.
    Raises BadFrame for a frame of the wrong layout.
    """
    problem = frame_problem(frame, pixel_format)
    if problem is not None:
        raise BadFrame(*problem)
    # threads=1: PyAV otherwise starts a swscale worker per core for each conversion, that is
    # new threads for every frame; frames are already converted in parallel with each other.
    if isinstance(frame, av.VideoFrame):
        converted = frame.reformat(width, height, format="yuv420p", threads=1)
        # reformat() hands back the frame itself when nothing needs to change.
        return fresh_frame(converted) if converted is frame else converted
    assert isinstance(frame, np.ndarray)
    # Wrapping the buffer avoids a copy; swscale reads it once to build the new frame.
    if frame.flags.c_contiguous:
        wrapped = av.VideoFrame.from_numpy_buffer(frame, format=pixel_format)
    else:
        wrapped = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=pixel_format)
    return wrapped.reformat(width, height, format="yuv420p", threads=1)


def fresh_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A new frame object with ``frame``'s yuv420p pixels (even sizes only).

    The track stamps each frame it sends with its own pts. A frame that is sent again, or that
    someone else may hold (a user's frame, a relayed one), must not have its pts changed under
    them, so those are copied: one memcpy of the planes, about 50 us at 1280x704.
    """
    return av.VideoFrame.from_numpy_buffer(frame.to_ndarray(), format="yuv420p")


def needs_conversion(frame: av.VideoFrame, width: int, height: int) -> bool:
    """Whether an av.VideoFrame must go through swscale to become a track frame."""
    return frame.width != width or frame.height != height or frame.format.name != "yuv420p"


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

    def __repr__(self) -> str:
        return (
            f"<SourceTrack {self._name} {self._width}x{self._height}@{self._fps} {self.readyState}>"
        )

    async def recv(self) -> av.VideoFrame:
        if self._feed._sends_on_arrival:
            return await self._recv_on_arrival()
        if self._feed._reads_when_due:
            return await self._recv_when_due()
        # Files, generators, captures: read the next frame, then send it as soon as the rate
        # allows (a read that blocked on a live input has already waited).
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
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._wait_for_rate(loop)
            repeat_at = self._pacer.repeat_at()
            timeout = None if repeat_at is None else max(0.0, repeat_at - loop.time())
            news = await self._feed._wait_for_news(timeout)
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
        self._feed._frame_sent()
        return frame

    def stop(self) -> None:
        super().stop()
        self._feed._track_ended(self)

    async def _fetch(self) -> av.VideoFrame | None:
        """One frame from the feed; None when there is none to send this time."""
        try:
            return await self._feed._next_frame(
                self._width, self._height, self._fps, self._executor
            )
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
        logger.warning("%s", error.message)
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:
            logger.exception("the media error callback raised")
