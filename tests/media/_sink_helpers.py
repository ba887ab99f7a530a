"""Helpers of the sink tests (MJPEG, recorder, snapshot): a stand-in session fed by the test,
and frames whose number can be read back."""

from __future__ import annotations

import threading
from typing import Any

import av
from _support.pictures import HEIGHT, WIDTH

from decart_sync.media import render_test_pattern
from decart_sync.realtime._frames import FrameConsumer, FrameHub


def pattern_frame(n: int, width: int = WIDTH, height: int = HEIGHT) -> av.VideoFrame:
    """Test-pattern frame ``n`` as a decoder would hand it out: yuv420p."""
    image = render_test_pattern(n, width, height)
    return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")


class HubSession:
    """What sinks need from a session (``frames()``, ``latest()``), over a real FrameHub that
    the test publishes to, so tests decide exactly when each frame arrives."""

    def __init__(self) -> None:
        self.hub = FrameHub()
        self.published = 0

    def frames(
        self, format: Any = "bgr", *, policy: Any = "latest", maxsize: int = 8
    ) -> FrameConsumer:
        return self.hub.consumer(format=format, policy=policy, maxsize=maxsize)

    def latest(self, format: Any = "bgr") -> Any:
        return self.hub.latest(format)

    def publish(self, frame: av.VideoFrame | None = None) -> None:
        self.hub.publish(frame if frame is not None else pattern_frame(self.published))
        self.published += 1

    @property
    def consumers(self) -> int:
        return self.hub.active_consumers


def thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())
