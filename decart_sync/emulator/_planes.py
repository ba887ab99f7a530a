"""Plumbing for the emulator's effects: numpy views on yuv420p frames, per-thread swscale
contexts, and the few whole-plane operations several styles share (lookup tables, edges,
nearest-neighbour upsampling).

Everything here works on ``uint8`` planes with integer arithmetic: at 1280x704 a lookup-table pass
over the luma plane costs about 0.7 ms and a simple vectorised add a few hundredths of that, which
is what keeps every effect inside its 5 ms budget (see ``benchmarks/effects.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import ColorRange, VideoReformatter

__all__ = [
    "C_MAX",
    "C_MIN",
    "C_NEUTRAL",
    "I16",
    "U8",
    "Y_BLACK",
    "Y_WHITE",
    "Edges",
    "Planes",
    "Workspace",
    "apply_lut",
    "edge_strength",
    "lut_from",
    "new_frame",
    "plane_views",
    "upsample_2x",
]

U8 = npt.NDArray[np.uint8]
I16 = npt.NDArray[np.int16]

# Nominal ("limited", BT.601) ranges of yuv420p video: effects keep their output inside them so
# a player never has to clip what we produce.
Y_BLACK, Y_WHITE = 16, 235
C_MIN, C_MAX, C_NEUTRAL = 16, 240, 128


class Planes(NamedTuple):
    """The three planes of a yuv420p frame as 2-D ``uint8`` views (no copies)."""

    y: U8
    u: U8
    v: U8


def plane_views(frame: av.VideoFrame) -> Planes:
    """Views on ``frame``'s planes, padding bytes at the end of each row excluded.

    They share memory with the frame: writing to them writes the frame.
    """
    views = []
    for plane in frame.planes:
        flat = np.frombuffer(memoryview(plane), dtype=np.uint8)
        rows = flat[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    y, u, v = views
    return Planes(y, u, v)


def new_frame(width: int, height: int) -> tuple[av.VideoFrame, Planes]:
    """A fresh yuv420p frame (contents undefined) and writable views on its planes."""
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.color_range = ColorRange.MPEG
    return frame, plane_views(frame)


class Workspace(threading.local):
    """Per-thread swscale contexts of one effect.

    A swscale context is costly to set up (about 0.9 ms at 1280x704, more than the scaling it
    then does) and must not be used by two threads at once, so each thread keeps its own, one per
    purpose ("to the model size", "down for blur", ...). This is a cache only: which context does
    the work never changes the pixels produced.
    """

    def __init__(self) -> None:
        self._scalers: dict[str, VideoReformatter] = {}

    def scale(
        self,
        purpose: str,
        frame: av.VideoFrame,
        width: int,
        height: int,
        pix_fmt: str = "yuv420p",
        interpolation: str | None = None,
    ) -> av.VideoFrame:
        """``frame`` scaled to ``width`` x ``height`` in ``pix_fmt``, video range; ``frame``
        itself when it already is (so treat the result as read-only)."""
        scaler = self._scalers.get(purpose)
        if scaler is None:
            scaler = self._scalers[purpose] = VideoReformatter()
        # Effects assume video ("MPEG") range, as encoders do. swscale keeps a full-range
        # source (JPEG images, some webcams) full range unless told otherwise; but asking for
        # video range on every frame would turn the no-op case (already the right size) into
        # a copy, since most decoders leave the range unspecified.
        full_range = frame.color_range == ColorRange.JPEG
        return scaler.reformat(
            frame,
            width,
            height,
            pix_fmt,
            interpolation=interpolation,
            dst_color_range=ColorRange.MPEG if full_range else None,
            # One thread: the budget is per core, and the server renders sessions in parallel.
            threads=1,
        )


def lut_from(curve: Callable[[npt.NDArray[np.float64]], npt.ArrayLike], lo: int, hi: int) -> U8:
    """A read-only 256-entry lookup table: ``curve`` evaluated on 0..255, rounded, clipped to
    ``lo..hi``. Built once per effect, so floating point here costs nothing per frame."""
    values = np.asarray(curve(np.arange(256, dtype=np.float64)), dtype=np.float64)
    table = np.clip(np.rint(np.broadcast_to(values, (256,))), lo, hi).astype(np.uint8)
    table.flags.writeable = False
    return table


def apply_lut(table: U8, src: U8, out: U8) -> None:
    """``out[i] = table[src[i]]``; ``out`` may be ``src``.

    numpy's lookup costs per element, whatever the element size, so on rows of an even number of
    pixels the lookup is done two pixels at a time: through a 65536-entry table of byte pairs
    (built in about 0.01 ms) on the planes viewed as uint16. That halves the cost of a luma pass.
    """
    pairs_fit = src.shape[-1] % 2 == 0 and src.strides[-1] == 1 and out.strides[-1] == 1
    if pairs_fit and src.size >= _PAIR_TABLE_WORTHWHILE:
        wide = table.astype(np.uint16)
        # Entry (first << 8 | second) maps both bytes of a pair at once, for either byte order.
        pair_table = ((wide[:, np.newaxis] << 8) | wide[np.newaxis, :]).ravel()
        np.take(pair_table, src.view(np.uint16), out=out.view(np.uint16), mode="wrap")
    else:
        # "wrap" skips the bounds check (a uint8 index is always in range) and the copy of
        # ``out`` numpy makes in the default mode.
        np.take(table, src, out=out, mode="wrap")


# Below this many pixels, building the pair table costs more than it saves.
_PAIR_TABLE_WORTHWHILE = 32 * 1024


class Edges(NamedTuple):
    """Luma gradients on the chroma grid (each array shaped like a chroma plane)."""

    half_luma: I16
    """Every other luma sample, in both directions."""
    across_columns: I16
    """``|difference|`` to the left neighbour: high on vertical edges (0..255)."""
    across_rows: I16
    """``|difference|`` to the neighbour above: high on horizontal edges (0..255)."""


def edge_strength(luma: U8) -> Edges:
    """Horizontal and vertical luma gradients at half resolution.

    Half resolution is a quarter of the work, and the result lines up with the chroma planes,
    which some styles colour by edge direction.
    """
    half = luma[::2, ::2].astype(np.int16)
    across_columns = np.zeros_like(half)
    np.subtract(half[:, 1:], half[:, :-1], out=across_columns[:, 1:])
    np.abs(across_columns, out=across_columns)
    across_rows = np.zeros_like(half)
    np.subtract(half[1:], half[:-1], out=across_rows[1:])
    np.abs(across_rows, out=across_rows)
    return Edges(half, across_columns, across_rows)


def upsample_2x(half: U8, out: U8) -> None:
    """Fill ``out`` with ``half`` doubled in both directions (nearest neighbour).

    ``half`` has ``ceil(n / 2)`` rows and columns for ``out``'s ``n``; odd sizes are fine.
    Four strided copies beat ``np.repeat`` twice (no intermediate array).
    """
    for row in (0, 1):
        for col in (0, 1):
            target = out[row::2, col::2]
            target[...] = half[: target.shape[0], : target.shape[1]]
