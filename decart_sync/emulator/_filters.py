"""The pixel code behind the emulator's effects: one filter per keyword style, the prompt-derived
colour grade, and reference-image palette transfer.

A *filter* reads the source planes (the input already scaled to the model size) and writes every
pixel of the destination planes of a fresh frame. Filters hold only read-only lookup tables and
numbers, so one instance can serve any number of threads. Which prompt picks which filter, and the
look of each, is documented in :mod:`decart_sync.emulator.effects`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import av
import numpy as np
import numpy.typing as npt

from decart_sync.emulator._planes import (
    C_MAX,
    C_MIN,
    C_NEUTRAL,
    I16,
    U8,
    Y_BLACK,
    Y_WHITE,
    Planes,
    Workspace,
    apply_lut,
    edge_strength,
    lut_from,
    plane_views,
    upsample_2x,
)

__all__ = [
    "Filter",
    "PaletteTransfer",
    "ToneCurves",
    "blur",
    "cartoon",
    "chroma_curve",
    "cold",
    "luma_curve",
    "negative",
    "neon",
    "noir",
    "passthrough",
    "pixel",
    "sepia",
    "sketch",
    "warm",
]

Floats = npt.NDArray[np.float64]

Filter = Callable[[av.VideoFrame, Planes, Planes, Workspace], None]
"""``filter(source_frame, source, destination, workspace)``: write every pixel of
``destination`` from ``source`` (the planes of ``source_frame``)."""


# ---------------------------------------------------------------- lookup-table builders


def luma_curve(curve: Callable[[Floats], Floats | float]) -> U8:
    """A luma table from ``curve``, a map of 0..1 (black..white) onto 0..1."""
    span = Y_WHITE - Y_BLACK

    def on_codes(codes: Floats) -> Floats:
        level = np.clip((codes - Y_BLACK) / span, 0.0, 1.0)
        return Y_BLACK + span * np.asarray(curve(level), dtype=np.float64)

    return lut_from(on_codes, Y_BLACK, Y_WHITE)


def chroma_curve(saturation: float = 1.0, shift: float = 0.0, step: int = 1) -> U8:
    """A chroma table: scale the distance from neutral by ``saturation``, add ``shift``, and
    round to multiples of ``step`` around neutral (``step > 1`` flattens colours into bands)."""

    def on_codes(codes: Floats) -> Floats:
        offset = (codes - C_NEUTRAL) * saturation + shift
        return C_NEUTRAL + np.rint(offset / step) * step

    return lut_from(on_codes, C_MIN, C_MAX)


def _contrast(amount: float) -> Callable[[Floats], Floats]:
    """An S-curve through mid-grey; ``amount`` is its steepness (a logistic, rescaled so black
    and white stay put)."""
    low, high = 1 / (1 + math.exp(amount / 2)), 1 / (1 + math.exp(-amount / 2))

    def curve(level: Floats) -> Floats:
        result: Floats = (1 / (1 + np.exp(-amount * (level - 0.5))) - low) / (high - low)
        return result

    return curve


def _posterize(levels: int, gamma: float = 1.0) -> Callable[[Floats], Floats]:
    def curve(level: Floats) -> Floats:
        result: Floats = np.rint(level**gamma * (levels - 1)) / (levels - 1)
        return result

    return curve


# ---------------------------------------------------------------- tone-only filters


@attrs.frozen(eq=False)
class ToneCurves:
    """A per-plane lookup table on each of Y, U and V: the cheapest kind of look (about 1 ms at
    1280x704). Warm, cold, the prompt-derived grade and the tone of blur are this."""

    y: U8
    u: U8
    v: U8

    def __call__(
        self, frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace
    ) -> None:
        apply_lut(self.y, src.y, dst.y)
        apply_lut(self.u, src.u, dst.u)
        apply_lut(self.v, src.v, dst.v)


def passthrough(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """Passthrough: the scaled input, unchanged."""
    for source, target in zip(src, dst, strict=True):
        np.copyto(target, source)


warm = ToneCurves(
    y=luma_curve(lambda level: level**0.9),
    u=chroma_curve(saturation=1.1, shift=-16),
    v=chroma_curve(saturation=1.15, shift=18),
)

cold = ToneCurves(
    y=luma_curve(lambda level: 0.06 + 0.94 * level**0.9),
    u=chroma_curve(saturation=0.8, shift=18),
    v=chroma_curve(saturation=0.8, shift=-12),
)

_NOIR_LUMA = luma_curve(_contrast(7.0))


def noir(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    apply_lut(_NOIR_LUMA, src.y, dst.y)
    dst.u.fill(C_NEUTRAL)
    dst.v.fill(C_NEUTRAL)


def _midtone_weight(codes: Floats) -> Floats:
    """1 at mid-grey, 0 at black and white."""
    level = np.clip((codes - Y_BLACK) / (Y_WHITE - Y_BLACK), 0.0, 1.0)
    result: Floats = 4 * level * (1 - level)
    return result


# Sepia: faded luma (no true black or white), and a brown tint strongest in the mid-tones, read
# from the luma under each chroma sample: the source colour is discarded, as in an old print.
_SEPIA_LUMA = luma_curve(lambda level: 0.08 + 0.84 * level**0.95)
_SEPIA_U = lut_from(lambda codes: C_NEUTRAL - 10 - 18 * _midtone_weight(codes), C_MIN, C_MAX)
_SEPIA_V = lut_from(lambda codes: C_NEUTRAL + 8 + 16 * _midtone_weight(codes), C_MIN, C_MAX)


def sepia(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    apply_lut(_SEPIA_LUMA, src.y, dst.y)
    luma_under_chroma = src.y[::2, ::2]
    apply_lut(_SEPIA_U, luma_under_chroma, dst.u)
    apply_lut(_SEPIA_V, luma_under_chroma, dst.v)


def negative(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    # Mirror each plane inside its nominal range (Y: 16..235 -> 235..16, C: 16..240 -> 240..16).
    # Plain uint8 arithmetic costs a fraction of a table lookup; clamping first keeps it from
    # wrapping around.
    np.minimum(src.y, Y_WHITE, out=dst.y)
    np.subtract(Y_BLACK + Y_WHITE, dst.y, out=dst.y)
    for source, target in ((src.u, dst.u), (src.v, dst.v)):
        np.clip(source, C_MIN, C_MAX, out=target)
        # 256 - c, in two steps because 256 does not fit in a uint8.
        np.subtract(C_MAX + C_MIN - 1, target, out=target)
        np.add(target, 1, out=target)


# ---------------------------------------------------------------- edge-based filters


def _ink(edges: I16, threshold: int, gain: int) -> I16:
    """How dark a pencil line is (0..219) for edge strengths ``edges``: nothing below
    ``threshold``, so flat areas and sensor noise stay clean."""
    ink = np.subtract(edges, threshold)
    np.multiply(ink, gain, out=ink)
    np.clip(ink, 0, Y_WHITE - Y_BLACK, out=ink)
    return ink


_CARTOON_LUMA = luma_curve(_posterize(levels=6, gamma=0.85))
_CARTOON_CHROMA = chroma_curve(saturation=1.7, step=14)


def cartoon(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """Flat bands of luma, bold flat colour, dark outlines."""
    apply_lut(_CARTOON_LUMA, src.y, dst.y)
    apply_lut(_CARTOON_CHROMA, src.u, dst.u)
    apply_lut(_CARTOON_CHROMA, src.v, dst.v)
    edges = edge_strength(src.y)
    ink = _ink(edges.across_columns + edges.across_rows, threshold=18, gain=6)
    ceiling = (Y_WHITE - ink).astype(np.uint8)
    full = np.empty_like(dst.y)
    upsample_2x(ceiling, full)
    np.minimum(dst.y, full, out=dst.y)


_PAPER_SHADE = lut_from(
    lambda codes: Y_WHITE - 0.3 * np.clip(Y_WHITE - codes, 0, None), Y_BLACK, Y_WHITE
)


def sketch(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """Pencil lines on white paper, with a light shading of the dark areas."""
    edges = edge_strength(src.y)
    ink = _ink(edges.across_columns + edges.across_rows, threshold=6, gain=5)
    # Shading and lines are computed on the half-resolution grid and doubled once at the end.
    shade = np.take(_PAPER_SHADE, edges.half_luma, mode="wrap").astype(np.int16)
    np.minimum(shade, Y_WHITE - ink, out=shade)
    upsample_2x(shade.astype(np.uint8), dst.y)
    # Cream paper: a faint warm tint rather than a dead grey.
    dst.u.fill(C_NEUTRAL - 3)
    dst.v.fill(C_NEUTRAL + 3)


def _spread(values: I16) -> None:
    """Widen bright lines by one sample each way (a 3x3 maximum, in place), so a glow is thicker
    than the edge that casts it."""
    # Separable: rows into a copy, then columns back. Reading and writing the same array in
    # one call would make numpy buffer the overlap, which costs more than this copy.
    tall = values.copy()
    np.maximum(tall[1:], values[:-1], out=tall[1:])
    np.maximum(tall[:-1], values[1:], out=tall[:-1])
    np.maximum(tall[:, 1:], tall[:, :-1], out=values[:, 1:])
    values[:, 0] = tall[:, 0]
    np.maximum(values[:, :-1], tall[:, 1:], out=values[:, :-1])


def neon(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """A dark scene whose edges glow: magenta on vertical edges, cyan on horizontal ones."""
    # Quarter of the brightness, by shift: no table needed.
    np.right_shift(src.y, 2, out=dst.y)
    np.add(dst.y, Y_BLACK, out=dst.y)
    edges = edge_strength(src.y)
    strength = edges.across_columns + edges.across_rows
    glow = _ink(strength, threshold=10, gain=6) + Y_BLACK
    _spread(glow)
    full = np.empty_like(dst.y)
    upsample_2x(glow.astype(np.uint8), full)
    np.maximum(dst.y, full, out=dst.y)
    # Colour: the scene's own colour, halved, plus the glow's. Magenta and cyan are both bluish
    # (U up); they differ in V, whose sign follows the edge direction.
    colour = np.minimum(strength * 4, 110)
    towards_red = np.where(edges.across_columns >= edges.across_rows, colour, -colour)
    for source, target, offset in ((src.u, dst.u, colour), (src.v, dst.v, towards_red)):
        # c // 2 + 64 halves the distance to neutral (128) without leaving uint8.
        mixed = np.right_shift(source, 1).astype(np.int16)
        mixed += offset + C_NEUTRAL // 2
        np.clip(mixed, C_MIN, C_MAX, out=mixed)
        target[...] = mixed


# ---------------------------------------------------------------- filters that rescale


_PIXEL_LUMA = luma_curve(_posterize(levels=8))
_PIXEL_CHROMA = chroma_curve(saturation=1.3, step=20)
_PIXEL_BLOCKS_ACROSS = 80


def pixel(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """Big square blocks (about 80 across) of few colours, like an 8-bit game."""
    height, width = dst.y.shape
    block = max(2, width // _PIXEL_BLOCKS_ACROSS)
    # swscale averages each block ("area" scaling); yuv444p keeps one colour per block instead
    # of one per two blocks.
    small = workspace.scale(
        "pixel-blocks", frame, -(-width // block), -(-height // block), "yuv444p", "AREA"
    )
    blocks = plane_views(small)
    # Which block each output pixel falls in: a luma pixel is one unit wide, a chroma pixel two.
    # Indices stay below the block counts, so "wrap" never wraps.
    for table, source, target, unit in (
        (_PIXEL_LUMA, blocks.y, dst.y, 1),
        (_PIXEL_CHROMA, blocks.u, dst.u, 2),
        (_PIXEL_CHROMA, blocks.v, dst.v, 2),
    ):
        rows, cols = target.shape
        row_block = np.arange(rows) * unit // block
        col_block = np.arange(cols) * unit // block
        coloured = np.take(table, source, mode="wrap")
        wide = np.take(coloured, col_block, axis=1, mode="wrap")
        np.take(wide, row_block, axis=0, out=target, mode="wrap")


_DREAM = ToneCurves(
    y=luma_curve(lambda level: 0.12 + 0.85 * level**0.8),
    u=chroma_curve(saturation=0.85, shift=-2),
    v=chroma_curve(saturation=0.85, shift=6),
)
_BLUR_FACTOR = 12


def blur(frame: av.VideoFrame, src: Planes, dst: Planes, workspace: Workspace) -> None:
    """A soft, bright, pastel blur: down to a twelfth, back up with bicubic interpolation (swscale
    does both far faster than a convolution), then a lifting tone curve."""
    height, width = dst.y.shape
    small = workspace.scale(
        "blur-down",
        frame,
        max(2, width // _BLUR_FACTOR),
        max(2, height // _BLUR_FACTOR),
        interpolation="AREA",
    )
    soft = workspace.scale("blur-up", small, width, height, interpolation="BICUBIC")
    _DREAM(soft, plane_views(soft), dst, workspace)


# ---------------------------------------------------------------- palette transfer


_LUMA_RATIO = (0.5, 2.0)
_CHROMA_RATIO = (0.25, 3.0)


@attrs.frozen
class PaletteTransfer:
    """Move each plane's mean and spread to a reference image's (Reinhard-style transfer, done
    per plane in YUV), in place, after the style.

    The spread ratio is clamped so a flat reference (a solid colour has no spread at all) tints
    the picture instead of wiping it out: luma keeps at least half its contrast.
    """

    means: tuple[float, float, float]
    stds: tuple[float, float, float]

    def __call__(self, planes: Planes) -> None:
        limits = ((Y_BLACK, Y_WHITE), (C_MIN, C_MAX), (C_MIN, C_MAX))
        ratios = (_LUMA_RATIO, _CHROMA_RATIO, _CHROMA_RATIO)
        for plane, mean, std, (lo, hi), (least, most) in zip(
            planes, self.means, self.stds, limits, ratios, strict=True
        ):
            frame_mean, frame_std = _sample_statistics(plane)
            ratio = min(max(std / max(frame_std, 1.0), least), most)
            apply_lut(_affine_table(frame_mean, mean, ratio, lo, hi), plane, plane)


_CODES = np.arange(256, dtype=np.float64)
_CODES.flags.writeable = False


def _sample_statistics(plane: U8) -> tuple[float, float]:
    """Mean and standard deviation of one sample in 16 (every fourth row and column): plenty
    for a mean and a spread. Taken from a histogram, which costs less than ``mean()`` plus
    ``std()``."""
    histogram = np.bincount(plane[::4, ::4].ravel(), minlength=256).astype(np.float64)
    count = histogram.sum()
    mean = float(histogram @ _CODES) / count
    variance = float(histogram @ (_CODES * _CODES)) / count - mean * mean
    return mean, math.sqrt(max(variance, 0.0))


def _affine_table(source_mean: float, target_mean: float, ratio: float, lo: int, hi: int) -> U8:
    """The table of ``target_mean + (code - source_mean) * ratio``, clipped to ``lo..hi``."""
    table = np.rint(target_mean + (_CODES - source_mean) * ratio)
    return np.clip(table, lo, hi).astype(np.uint8)
