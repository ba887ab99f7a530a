"""The benchmarks' bookkeeping around the SDK's pixel timecode.

The benchmarks measure latency per frame inside one process: a sequence number goes into the
frame before it is handed over and comes back out of the decoded frame the user thread receives.
Everything about the code in the pixels is the SDK's own (:mod:`decart_sync.media.timecode`,
the one the demo measures with: frames of the test pattern with their number stamped in them,
reading a received frame, the full number back from its code). This module adds only what the
benchmarks keep around it: when each number was sent.
"""

from __future__ import annotations

__all__ = ["SendLog"]


class SendLog:
    """When each sequence number was handed over. Written by one thread, read by another (a
    dict store and an int store are each atomic under the GIL)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.last = -1

    def record(self, seq: int, at: float) -> None:
        self.times[seq] = at
        self.last = seq
