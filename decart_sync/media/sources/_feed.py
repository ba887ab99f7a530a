"""The contract between a video source and the aiortc track it feeds.

A source lives in the blocking world; its :class:`~decart_sync.media.sources._track.SourceTrack`
lives on the loop thread and asks it for frames through :class:`FrameFeed`. This module holds
that contract and the three ways a read can come back without a frame: the source has ended
(:class:`EndOfStream`), one frame was unusable (:class:`BadFrame`), the source broke
(:class:`SourceFailed`).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

import av
from aiortc.mediastreams import MediaStreamTrack

from decart_sync.errors import DecartSDKError

__all__ = ["BadFrame", "EndOfStream", "FrameFeed", "SourceFailed"]


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

    def _track_ended(self, track: MediaStreamTrack) -> None:
        """The track stopped; the source forgets it."""
        ...
