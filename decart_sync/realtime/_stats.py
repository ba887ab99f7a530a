"""Session statistics: counters and rates a user can poll with ``session.stats()``."""

from __future__ import annotations

import collections
import time

import attrs


@attrs.frozen
class SessionStats:
    """A snapshot of one session's media flow."""

    frames_sent: int
    frames_received: int
    frames_dropped: int
    fps_in: float
    fps_out: float
    rtt_ms: float | None
    state: str
    #: The media transport of the current connection: ``livekit`` or ``webrtc``.
    transport: str = "webrtc"


class RateMeter:
    """Events per second over the last ``window`` seconds; O(1) to record."""

    def __init__(self, window: float = 2.0, capacity: int = 256) -> None:
        self._window = window
        self._times: collections.deque[float] = collections.deque(maxlen=capacity)

    def record(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        recent = [t for t in list(self._times) if now - t <= self._window]
        span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
        # A handful of frames over a few milliseconds says little about a rate: wait for a
        # quarter of the window before reporting one.
        return (len(recent) - 1) / span if span >= self._window / 4 else 0.0
