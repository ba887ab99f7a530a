"""The contract between a video source and the aiortc track it feeds.

A source lives in the blocking world; its track (``SourceTrack``) lives on the loop thread, asks
it for frames through :class:`FrameFeed` and paces them as the source's :class:`Pacing` says.
This module holds that contract and the three ways a read can come back without a frame: the
source has ended (:class:`EndOfStream`), one frame was unusable (:class:`BadFrame`), the source
broke (:class:`SourceFailed`).
"""

from __future__ import annotations

import enum
from concurrent.futures import Executor
from typing import Protocol

import av
from aiortc.mediastreams import MediaStreamTrack

from decart_sync.errors import DecartSDKError

__all__ = ["BadFrame", "EndOfStream", "FrameFeed", "Pacing", "SourceFailed"]


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


class Pacing(enum.Enum):
    """How a track paces its source: when a frame is read, and when it goes out.

    Every mode keeps the model's frame rate as a cap (see ``Pacer``); they differ in what waits
    for what.
    """

    READ_AHEAD = "read_ahead"
    """Read the next frame ahead, then send it once the rate allows: files, generators,
    ``read()`` captures (a blocking read of a live input has done its waiting already)."""

    WHEN_DUE = "when_due"
    """Read once the rate allows a frame, and send what the read returns at once: the newest
    frame a live device has (the read waits for the device if nothing is queued), or a picture
    drawn for now (the test pattern), so it reaches the model no older than a live input's."""

    ON_ARRIVAL = "on_arrival"
    """Filled by others at their own rate: the source says when a frame arrives
    (:meth:`FrameFeed.wait_for_news`) and the track sends it at once, as the rate allows,
    repeating the last frame when nothing new comes."""


class FrameFeed(Protocol):
    """What a track needs from its source; :class:`VideoSource` implements it.

    The track calls these on its loop thread, one call at a time.
    """

    @property
    def pacing(self) -> Pacing:
        """How the track paces this source; fixed for the source's life."""
        ...

    async def wait_for_news(self, timeout: float | None) -> bool:
        """For a source paced ``ON_ARRIVAL``: wait until the next :meth:`next_frame` has
        something new to say (a frame not sent yet, an end, a failure) and return True, or
        return False after ``timeout`` seconds (None: no limit) or when woken for nothing."""
        ...

    async def next_frame(
        self, width: int, height: int, fps: int, executor: Executor | None
    ) -> av.VideoFrame | None:
        """The next frame at ``width`` x ``height`` in yuv420p, a new object the track may
        stamp, or None if there is nothing to send yet. Raises EndOfStream, BadFrame or
        SourceFailed."""
        ...

    def frame_sent(self) -> None:
        """Count one frame handed to the peer connection."""
        ...

    def track_ended(self, track: MediaStreamTrack) -> None:
        """The track stopped; the source forgets it."""
        ...
