"""A frame's sequence number written into its pixels, and read back after the codec.

The benchmarks measure latency per frame inside one process: the number goes into the frame
before it is handed to the SDK and comes back out of the decoded frame the user thread receives.
The code has to survive a lossy video codec (VP8 or H.264 at a few hundred kbit/s), a resize to
the model's size and the emulator's effect, so it is deliberately coarse:

* 24 bits: the 16-bit sequence number and an 8-bit CRC of it, so a misread is rejected instead
  of turning into a wrong latency;
* each bit is a *pair* of cells, white-black for 1 and black-white for 0 (Manchester style), read
  by comparing the two cells' brightness. Any brightness or contrast change, tint or tone curve
  that keeps white brighter than black leaves the code readable. Effects that do not (the
  emulator's ``negative``, or ``sketch``, which paints flat areas as paper) make it unreadable,
  and the CRC rejects all but about one such frame in 256; the benchmarks measure latency in
  passthrough;
* 48 cells in two rows along the top edge, each 1/24 of the width and 1/12 of the height
  (27x29 px at 640x352, 53x59 px at 1280x704): larger than a codec macroblock, and positioned by
  fraction of the frame so a resize does not move them. Only the central half of a cell is read,
  away from the ringing at its edges.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from decart_sync.media import render_test_pattern

SEQ_BITS = 16
SEQ_MODULO = 1 << SEQ_BITS
_CRC_BITS = 8
_BITS = SEQ_BITS + _CRC_BITS
_ROWS = 2
_COLUMNS = _BITS * 2 // _ROWS  # cells per row: 24
_BAND_ROWS = 12  # the frame height is split in 12 rows of cells; the code uses the top 2
# Brightness difference (0-255) below which a cell pair is not trusted to mean anything.
_MIN_CONTRAST = 40.0


def _crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of the two bytes of ``value``."""
    crc = 0
    for byte in (value >> 8, value & 0xFF):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(seq: int) -> list[int]:
    word = ((seq % SEQ_MODULO) << _CRC_BITS) | _crc8(seq % SEQ_MODULO)
    return [(word >> (_BITS - 1 - i)) & 1 for i in range(_BITS)]


@functools.lru_cache(maxsize=16)
def _cells(height: int, width: int) -> tuple[tuple[int, int, int, int], ...]:
    """(y0, y1, x0, x1) of every cell, in bit order (two cells per bit), for one frame size."""
    cells = []
    for index in range(_BITS * 2):
        row, column = divmod(index, _COLUMNS)
        y0 = row * height // _BAND_ROWS
        y1 = (row + 1) * height // _BAND_ROWS
        x0 = column * width // _COLUMNS
        x1 = (column + 1) * width // _COLUMNS
        cells.append((y0, y1, x0, x1))
    return tuple(cells)


@functools.lru_cache(maxsize=16)
def _cores(height: int, width: int) -> tuple[tuple[int, int, int, int], ...]:
    """The central half of each cell, the part that is read back."""
    cores = []
    for y0, y1, x0, x1 in _cells(height, width):
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        cores.append((y0 + dy, y1 - dy, x0 + dx, x1 - dx))
    return tuple(cores)


def stamp(frame: np.ndarray[Any, Any], seq: int) -> None:
    """Write ``seq`` (modulo 2**16) into the top of an HxWx3 uint8 frame, in place."""
    height, width = frame.shape[:2]
    cells = _cells(height, width)
    for bit_index, bit in enumerate(_bits(seq)):
        first, second = cells[2 * bit_index], cells[2 * bit_index + 1]
        bright, dark = (first, second) if bit else (second, first)
        frame[bright[0] : bright[1], bright[2] : bright[3]] = 255
        frame[dark[0] : dark[1], dark[2] : dark[3]] = 0


def coded_frame(seq: int, width: int, height: int) -> np.ndarray[Any, Any]:
    """Frame ``seq`` of the SDK's moving test pattern, with ``seq`` stamped in it: content that
    changes every frame, so the encoder has real work to do."""
    frame = render_test_pattern(seq, width, height)
    stamp(frame, seq)
    return frame


def read(frame: np.ndarray[Any, Any]) -> int | None:
    """The sequence number (modulo 2**16) stamped in ``frame``, or None if it cannot be read
    with confidence. ``frame`` is HxWx3 (any channel order) or HxW grey, any size."""
    height, width = frame.shape[:2]
    cores = _cores(height, width)
    means = [float(frame[y0:y1, x0:x1].mean()) for y0, y1, x0, x1 in cores]
    word = 0
    for bit_index in range(_BITS):
        difference = means[2 * bit_index] - means[2 * bit_index + 1]
        if abs(difference) < _MIN_CONTRAST:
            return None
        word = (word << 1) | (1 if difference > 0 else 0)
    seq, crc = word >> _CRC_BITS, word & 0xFF
    return seq if _crc8(seq) == crc else None


def unwrap(seq16: int, near: int) -> int:
    """The full sequence number whose low 16 bits are ``seq16``, closest to ``near``."""
    base = near - near % SEQ_MODULO + seq16
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
