"""The benchmarks' bookkeeping around the SDK's pixel timecode.

The benchmarks measure latency per frame inside one process: a sequence number goes into the
frame before it is handed over and comes back out of the decoded frame the user thread receives.
The code in the pixels is the SDK's own (:mod:`decart_sync.commands._timecode`, the one the
demo measures with, made to survive lossy codecs, resizing and every emulator effect); this
module adds only what the benchmarks keep around it: frames of the moving test pattern with
their number in them, the full number back from its low bits, and when each was sent.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from decart_sync.commands._timecode import MODULUS, Timecode
from decart_sync.media import render_test_pattern

# Sequence numbers are carried modulo this; unwrap() restores them.
SEQ_MODULO = MODULUS


@functools.lru_cache(maxsize=16)
def _timecode(width: int, height: int) -> Timecode:
    return Timecode(width, height)


def coded_frame(seq: int, width: int, height: int) -> np.ndarray[Any, Any]:
    """Frame ``seq`` of the SDK's moving test pattern, with ``seq`` stamped in it: content that
    changes every frame, so the encoder has real work to do."""
    frame = render_test_pattern(seq, width, height)
    _timecode(width, height).stamp(frame, seq)
    return frame


def read(frame: np.ndarray[Any, Any]) -> int | None:
    """The sequence number (modulo :data:`SEQ_MODULO`) stamped in ``frame``, or None if it cannot
    be read with confidence. ``frame`` is HxWx3 (any channel order) or HxW grey, at the size it
    was stamped at or resized with the same aspect."""
    height, width = frame.shape[:2]
    return _timecode(width, height).read(frame)


def unwrap(seq_low: int, near: int) -> int:
    """The full sequence number whose low bits are ``seq_low``, closest to ``near``."""
    base = near - near % SEQ_MODULO + seq_low
    candidates = (base - SEQ_MODULO, base, base + SEQ_MODULO)
    return min(candidates, key=lambda value: abs(value - near))


class SendLog:
    """When each sequence number was handed over. Written by one thread, read by another (a
    dict store and an int store are each atomic under the GIL)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.last = -1

    def record(self, seq: int, at: float) -> None:
        self.times[seq] = at
        self.last = seq
