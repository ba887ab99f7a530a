"""Frames pushed by the user's code from any thread: ``PushSource().send(frame)``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from decart_sync._redact import get_logger
from decart_sync.errors import InvalidInputError, SessionClosedError
from decart_sync.media.sources._convert import PixelFormat, frame_problem
from decart_sync.media.sources._feed import EndOfStream
from decart_sync.media.sources._latest import InputFrame, LatestSource

__all__ = ["PushSource"]

_log = get_logger(__name__)


class PushSource(LatestSource):
    """Frames pushed by your code, from any thread: ``source.send(frame)``.

    ``send()`` checks the frame at once (``InvalidInputError`` for anything but an HxWx3 uint8
    array in ``pixel_format`` order, or an av.VideoFrame), copies an array (you may reuse your
    buffer as soon as it returns), and returns without waiting. That copy is the only one: the
    track converts it to the model's size and sends the result.
    The track sends a new frame as soon as it arrives, but no more often than the model's frame
    rate: a frame replaced before it was sent counts in :attr:`frames_dropped`. When nothing new
    comes for two frame intervals the last frame is sent again, so the stream never stalls.

    ``send()`` returns the frame's number: 0 for the first frame this source accepted, then 1,
    2, ... To learn when the track takes each frame (to split a latency into the wait for the
    track and the rest of the way, say), pass ``on_taken``: it is called with that number at
    the moment the track takes a new frame to send it (a repeat or a dropped frame is never
    reported). It runs on the session's loop thread, so it must only note what it needs (the
    number and ``time.monotonic()``) and return: never block, never call the SDK. An exception
    it raises is logged and ignored. Without it, taking a frame costs nothing extra.
    """

    def __init__(
        self,
        *,
        pixel_format: PixelFormat = "bgr24",
        on_taken: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__("push source", pixel_format)
        self._on_taken = on_taken
        self._slot_lock = threading.Lock()
        # The newest frame; its number is always ``_received - 1``.
        self._latest: InputFrame | None = None
        self._unsent = False
        self._received = 0
        self._dropped = 0

    @property
    def frames_received(self) -> int:
        """Frames accepted by :meth:`send`."""
        return self._received

    @property
    def frames_dropped(self) -> int:
        """Frames replaced by a newer one before they could be sent."""
        return self._dropped

    def send(self, frame: np.ndarray[Any, Any] | av.VideoFrame) -> int:
        """Offer ``frame`` as the newest input frame, and return its number (the count of frames
        accepted before it). Thread-safe; does not wait for the track."""
        problem = frame_problem(frame, self._pixel_format)
        if problem is not None:
            raise InvalidInputError(problem[1])
        if isinstance(frame, np.ndarray):
            # Callers often reuse one buffer; what we send must be what they passed. The copy is
            # C-contiguous, so the conversion wraps it without copying again.
            frame = np.array(frame, order="C", copy=True)
        with self._slot_lock:
            if self._closed:
                raise SessionClosedError("this PushSource is closed; frames can no longer be sent")
            if self._unsent:
                self._dropped += 1
            number = self._received
            self._latest = frame
            self._unsent = True
            self._received += 1
        self._announce()
        return number

    def _newest(self) -> InputFrame | None:
        with self._slot_lock:
            if self._closed:
                raise EndOfStream
            fresh, self._unsent = self._unsent, False
            latest, number = self._latest, self._received - 1
        if fresh and self._on_taken is not None:
            self._report_taken(self._on_taken, number)
        return latest

    @staticmethod
    def _report_taken(on_taken: Callable[[int], None], number: int) -> None:
        try:
            on_taken(number)
        except Exception:
            # Instrumentation must not break the stream it measures.
            _log.exception("PushSource's on_taken callback raised; the frame is sent anyway")

    def _has_news(self) -> bool:
        return self._unsent or self._closed
