"""A frame number drawn into a video frame as a barcode, and read back after the trip: how to
measure real end-to-end latency per frame when you own the input.

Stamp each input frame with its number, note when the session took it, and look for the number
in the transformed frames that come back: latency is "received at" minus "sent at" for the
first output frame that carries each number. ``decart-sync demo`` and ``decart-sync run --input
synthetic`` measure their latency this way, and so do the benchmarks.

* :class:`StampedPattern` does all of it for the synthetic test pattern: hand ``.source()`` to
  ``connect()``, then :meth:`StampedPattern.read` each output frame and look its send time up
  with :meth:`StampedPattern.sent_at`.
* With your own frames, :class:`Timecode` stamps and reads numbers (:meth:`Timecode.stamp`,
  :meth:`Timecode.read`); :func:`stamped_test_pattern` and :func:`read_number` do it for a
  frame of the test pattern and a received frame; :func:`unwrap` turns a code (the number
  modulo :data:`MODULUS`) back into the full number.

The code has to survive two lossy video encodes, rescaling to the model's size and every
emulator effect (inverted tones, pencil shading, a dark neon scene, posterized blocks, a strong
blur, colour grades). So it is made of few, large cells along the bottom edge, and it is read
by comparing cells with each other, never with a fixed threshold:

* the strip is ``CELLS`` squares wide; cells come in pairs, and a pair means 1 when its left cell
  is brighter than its right one, 0 otherwise (Manchester coding: every pair has one bright and
  one dark cell, so the reading does not depend on the effect's brightness or contrast);
* the first pair is always bright-dark: it tells the reader the polarity (the negative effect
  inverts every pair) and the contrast to expect;
* then come ``NUMBER_BITS`` bits of the frame number (modulo ``2 ** NUMBER_BITS``) and
  ``CHECK_BITS`` bits of a check value, so a misread frame is rejected rather than counted;
* only the middle of each cell is sampled, away from the outlines and glows that edge effects
  draw at cell borders.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from decart_sync.media.sources import IterableSource, Pacing
from decart_sync.media.test_pattern import render_test_pattern

__all__ = [
    "CELLS",
    "MODULUS",
    "NUMBER_BITS",
    "StampedPattern",
    "Timecode",
    "luma_plane",
    "read_number",
    "stamped_test_pattern",
    "unwrap",
]

NUMBER_BITS = 12
CHECK_BITS = 3
PAIRS = 1 + NUMBER_BITS + CHECK_BITS
CELLS = 2 * PAIRS
MODULUS = 1 << NUMBER_BITS

# Input luma of the two cell colours: well inside video range so no encoder clips them.
_BRIGHT, _DARK = 235, 16
# A pair is trusted only if its contrast is at least this share of the reference pair's, and
# the reference pair itself must show at least this many code values of contrast.
_MIN_SHARE = 0.3
_MIN_CONTRAST = 8.0


def _check_value(number: int) -> int:
    """XOR of the number's 3-bit groups: any single flipped bit changes it."""
    value = 0
    for shift in range(0, NUMBER_BITS, CHECK_BITS):
        value ^= (number >> shift) & ((1 << CHECK_BITS) - 1)
    return value


def _bits(number: int) -> list[int]:
    number %= MODULUS
    word = (number << CHECK_BITS) | _check_value(number)
    return [(word >> i) & 1 for i in reversed(range(NUMBER_BITS + CHECK_BITS))]


class Timecode:
    """Stamps frame numbers into ``width`` x ``height`` BGR frames and reads them back from
    frames of any size (the strip scales with the picture)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        # Square cells across the full width; the last few pixels of an odd width stay as drawn.
        self.cell = width // CELLS
        if self.cell < 4 or self.cell > height // 3:
            raise ValueError(f"a {width}x{height} frame is too small or narrow for the timecode")

    def stamp(self, image: npt.NDArray[np.uint8], number: int) -> None:
        """Draw ``number``'s barcode over the bottom of ``image`` (BGR, in place)."""
        cell = self.cell
        strip = image[self.height - cell :, : cell * CELLS]
        for pair, bit in enumerate([1, *_bits(number)]):
            left, right = (_BRIGHT, _DARK) if bit else (_DARK, _BRIGHT)
            x = 2 * pair * cell
            strip[:, x : x + cell] = left
            strip[:, x + cell : x + 2 * cell] = right

    def read(self, luma: npt.NDArray[Any]) -> int | None:
        """The number in a frame's luma plane (2-D, any size), or None if it cannot be read
        with confidence. A colour frame (HxWxC) works too: its channels are averaged, which
        keeps a bright cell brighter than a dark one, and only the strip is ever read."""
        rows, cols = luma.shape[:2]
        scale_x, scale_y = cols / self.width, rows / self.height
        cell_w, cell_h = self.cell * scale_x, self.cell * scale_y
        top = rows - cell_h
        # The middle half of each cell, in both directions.
        y0, y1 = int(top + cell_h * 0.25), int(top + cell_h * 0.75)
        band = luma[y0:y1].astype(np.float32)
        means = np.empty(CELLS, np.float32)
        for i in range(CELLS):
            x0 = int((i + 0.25) * cell_w)
            x1 = max(x0 + 1, int((i + 0.75) * cell_w))
            means[i] = band[:, x0:x1].mean()
        contrast = means[0::2] - means[1::2]  # one value per pair: left minus right
        reference = float(contrast[0])
        if abs(reference) < _MIN_CONTRAST:
            return None
        if np.any(np.abs(contrast[1:]) < _MIN_SHARE * abs(reference)):
            return None
        word = 0
        for value in contrast[1:]:
            word = (word << 1) | int((value > 0) == (reference > 0))
        number, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
        return number if _check_value(number) == check else None


@functools.lru_cache(maxsize=16)
def _timecode(width: int, height: int) -> Timecode:
    return Timecode(width, height)


def stamped_test_pattern(
    number: int, width: int, height: int, seed: int = 0
) -> npt.NDArray[np.uint8]:
    """Frame ``number`` of the moving test pattern (:func:`~decart_sync.media.render_test_pattern`)
    with ``number`` stamped in it: content that changes every frame, as a camera's does, so
    the encoder has real work to do."""
    image = render_test_pattern(number, width, height, seed)
    _timecode(width, height).stamp(image, number)
    return image


def read_number(image: npt.NDArray[Any]) -> int | None:
    """The code (a number modulo :data:`MODULUS`) stamped in a received frame, or None if it
    cannot be read with confidence. ``image`` is HxWx3 (any channel order) or HxW grey, at the
    size it was stamped at or resized to the same aspect (as a model's output is)."""
    height, width = image.shape[:2]
    return _timecode(width, height).read(image)


def unwrap(code: int, near: int) -> int:
    """The full number whose code (the number modulo :data:`MODULUS`) is ``code``, closest to
    ``near`` (the newest number sent, say): numbers outlive the code's range in long runs."""
    base = near - near % MODULUS + code
    return min((base - MODULUS, base, base + MODULUS), key=lambda value: abs(value - near))


def luma_plane(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """A read-only view of a yuv420p frame's luma plane (no copy, nothing converted, so it is
    safe on a frame that other readers of the session share)."""
    plane = frame.planes[0]
    flat = np.frombuffer(memoryview(plane), dtype=np.uint8)
    rows = flat[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


class StampedPattern:
    """The synthetic test pattern, stamped with its frame numbers: an endless iterator of BGR
    frames to hand a session as its source, which remembers when each frame was taken.

    The session reads one frame each time its rate allows one, in its media executor;
    :meth:`sent_at` may be called from any other thread.
    """

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.timecode = Timecode(width, height)
        self._size = (width, height)
        self._seed = seed
        # (frame number, monotonic time) by number modulo MODULUS: the newest frame with that
        # code. Replacing one tuple is atomic, so the reader needs no lock.
        self._sent: list[tuple[int, float] | None] = [None] * MODULUS

    def __iter__(self) -> Iterator[npt.NDArray[np.uint8]]:
        number = 0
        while True:
            image = stamped_test_pattern(number, *self._size, self._seed)
            # Stamped as late as possible: this is when the SDK takes the frame.
            self._sent[number % MODULUS] = (number, time.monotonic())
            yield image
            number += 1

    def source(self) -> IterableSource:
        """This pattern as a session's source, drawn when each frame is due (as
        ``test_pattern()`` is), so the latency measured starts when the SDK takes the frame."""
        return IterableSource(self, pacing=Pacing.WHEN_DUE)

    def sent_at(self, code: int) -> tuple[int, float] | None:
        """The full frame number and send time of the newest frame stamped with ``code``."""
        return self._sent[code % MODULUS]

    def read(self, frame: av.VideoFrame) -> int | None:
        """The code stamped in an output frame, or None if it cannot be read."""
        if frame.format.name not in ("yuv420p", "yuvj420p"):
            return None
        return self.timecode.read(luma_plane(frame))
