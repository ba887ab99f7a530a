"""A synthetic, deterministic test picture: moving coloured shapes over a fixed backdrop, with a
large frame counter.

Frame ``n`` is a pure function of ``(n, width, height, seed)``, so a test can render the frame it
expects and compare, and a person watching the output can read the counter to see which input
frame an output frame came from. Rendering is cheap because everything that does not move is
computed once per ``(width, height, seed)``; a frame is one copy of the backdrop plus a few small
masked writes.

That fixed part (the backdrop is a whole frame: 2.8 MB at 1280x720) lives as long as something
renders with it: a :class:`PatternRenderer` (what the ``test_pattern()`` source holds) keeps it,
renderers of the same size and seed share it, and it is freed with the last of them, so a closed
session leaves no frame behind. :func:`render_test_pattern` keeps the two most recent for callers
that draw frame after frame without a renderer of their own.
"""

from __future__ import annotations

import functools
import threading
import weakref

import attrs
import numpy as np
import numpy.typing as npt

from decart_sync.errors import InvalidInputError

__all__ = ["PatternRenderer", "render_test_pattern"]

Image = npt.NDArray[np.uint8]

# Each digit is 3 columns by 5 rows; '#' is lit. Scaled up with np.kron so it stays crisp.
_GLYPH_ROWS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
}
_GLYPH_W, _GLYPH_H = 3, 5
# The counter is padded to this many digits so its box does not change size as it counts.
_COUNTER_DIGITS = 6
_MIN_SIDE = 16


@attrs.frozen
class _Sprite:
    """One moving shape: its mask, colour, and a bouncing path over the frame."""

    mask: npt.NDArray[np.bool_]  # size x size x 1, so it broadcasts over the colour channels
    color: Image
    start: tuple[int, int]
    speed: tuple[int, int]
    span: tuple[int, int]  # how far the top-left corner may travel in x and y

    def position(self, n: int) -> tuple[int, int]:
        return _bounce(self.start[0] + self.speed[0] * n, self.span[0]), _bounce(
            self.start[1] + self.speed[1] * n, self.span[1]
        )


@attrs.frozen
class _Layout:
    """Everything about a pattern that does not depend on the frame number."""

    background: Image
    sprites: tuple[_Sprite, ...]
    glyphs: dict[str, Image]  # each digit as a white-on-black tile, ready to copy in
    scale: int
    counter_origin: tuple[int, int]
    counter_box: tuple[int, int]  # height, width


def _bounce(travelled: int, span: int) -> int:
    """Where a point bouncing between 0 and ``span`` is after travelling ``travelled`` pixels."""
    if span <= 0:
        return 0
    phase = travelled % (2 * span)
    return phase if phase <= span else 2 * span - phase


def _shape_masks(
    size: int,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """A disc, a diamond and a ring, each ``size`` pixels square."""
    centre = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size]
    dy, dx = ys - centre, xs - centre
    radius = size / 2
    disc = dx * dx + dy * dy <= radius * radius
    diamond = np.abs(dx) + np.abs(dy) <= radius
    ring = disc & (dx * dx + dy * dy >= (radius * 0.55) ** 2)
    return disc, diamond, ring


def _background(width: int, height: int, rng: np.random.Generator) -> Image:
    """A dim two-colour gradient with a grid, so motion and scaling are easy to see."""
    left = rng.integers(20, 110, size=3).astype(np.float32)
    right = rng.integers(20, 110, size=3).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[:, None]
    row = left * (1.0 - ramp) + right * ramp  # width x 3
    shade = np.linspace(0.7, 1.0, height, dtype=np.float32)[:, None, None]
    image: Image = (row[None, :, :] * shade).astype(np.uint8)
    step = max(8, min(width, height) // 8)
    image[::step, :, :] = 160
    image[:, ::step, :] = 160
    return image


_layouts: weakref.WeakValueDictionary[tuple[int, int, int], _Layout] = weakref.WeakValueDictionary()
_layouts_lock = threading.Lock()


def _layout(width: int, height: int, seed: int) -> _Layout:
    """The fixed part for this size and seed: shared while any renderer holds it."""
    key = (width, height, seed)
    with _layouts_lock:
        layout = _layouts.get(key)
        if layout is None:
            layout = _layouts[key] = _make_layout(width, height, seed)
        return layout


def _make_layout(width: int, height: int, seed: int) -> _Layout:
    rng = np.random.default_rng(seed)
    background = _background(width, height, rng)
    background.setflags(write=False)

    size = max(4, min(width, height) // 5)
    sprites = []
    for mask in _shape_masks(size):
        span = (max(0, width - size), max(0, height - size))
        sprites.append(
            _Sprite(
                mask=mask[:, :, None],
                color=rng.integers(120, 256, size=3).astype(np.uint8),
                start=(
                    int(rng.integers(0, 2 * span[0] + 1)),
                    int(rng.integers(0, 2 * span[1] + 1)),
                ),
                speed=(
                    int(rng.integers(2, 6)) * max(1, width // 160),
                    int(rng.integers(1, 5)) * max(1, height // 120),
                ),
                span=span,
            )
        )

    # The counter: as large as fits in a third of the height and most of the width.
    gap = 1  # glyph-cells between digits
    cells_w = _COUNTER_DIGITS * (_GLYPH_W + gap) + gap
    cells_h = _GLYPH_H + 2 * gap
    scale = max(1, min(height // (3 * cells_h), (width * 9 // 10) // cells_w))
    glyphs = {}
    for digit, rows in _GLYPH_ROWS.items():
        lit = np.array([[255 if c == "#" else 0 for c in row] for row in rows], dtype=np.uint8)
        tile = np.kron(lit, np.ones((scale, scale), dtype=np.uint8))
        glyphs[digit] = np.repeat(tile[:, :, None], 3, axis=2)
    margin = max(1, min(width, height) // 40)
    return _Layout(
        background=background,
        sprites=tuple(sprites),
        glyphs=glyphs,
        scale=scale,
        counter_origin=(margin, margin),
        counter_box=(cells_h * scale, cells_w * scale),
    )


def _draw_counter(image: Image, n: int, layout: _Layout) -> None:
    top, left = layout.counter_origin
    box_h, box_w = layout.counter_box
    box = image[top : top + box_h, left : left + box_w]
    box[...] = 0
    scale = layout.scale
    text = str(n).rjust(_COUNTER_DIGITS, "0")
    # A counter past the padding keeps its last digits: they are the ones that change.
    for i, digit in enumerate(text[-_COUNTER_DIGITS:]):
        x = (1 + i * (_GLYPH_W + 1)) * scale
        cell = box[scale : scale + _GLYPH_H * scale, x : x + _GLYPH_W * scale]
        # Tiny frames clip the counter rather than refuse to render.
        cell[...] = layout.glyphs[digit][: cell.shape[0], : cell.shape[1]]


def _check_int(name: str, value: object, low: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise InvalidInputError(f"test pattern {name} must be an int{bound}, got {value!r}")


class PatternRenderer:
    """The test pattern at one size and seed; holds its fixed part while it lives."""

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        _check_int("width", width, _MIN_SIDE)
        _check_int("height", height, _MIN_SIDE)
        _check_int("seed", seed, None)
        self.width, self.height, self.seed = width, height, seed
        self._layout = _layout(width, height, seed)

    def render(self, n: int) -> Image:
        """Frame ``n``, as a new ``height x width x 3`` uint8 BGR array."""
        _check_int("n", n, 0)
        layout = self._layout
        image: Image = layout.background.copy()
        for sprite in layout.sprites:
            x, y = sprite.position(n)
            side = sprite.mask.shape[0]
            region = image[y : y + side, x : x + side]
            # A copy with a broadcast mask is cheaper than fancy indexing with a boolean array.
            np.copyto(region, sprite.color, where=sprite.mask[: region.shape[0], : region.shape[1]])
        _draw_counter(image, n, layout)
        return image


@functools.lru_cache(maxsize=2)
def _recent_renderer(width: int, height: int, seed: int) -> PatternRenderer:
    return PatternRenderer(width, height, seed)


def render_test_pattern(n: int, width: int, height: int, seed: int = 0) -> Image:
    """Frame ``n`` of the test pattern, as a new ``height x width x 3`` uint8 BGR array.

    The same arguments always give the same pixels. The frame counter (top left) shows the last
    six digits of ``n``. Drawing many frames, a :class:`PatternRenderer` of your own does the
    same without this function's small cache.
    """
    # Checked before the cache sees them: an unhashable or wrong value gets a clear error.
    _check_int("width", width, _MIN_SIDE)
    _check_int("height", height, _MIN_SIDE)
    _check_int("seed", seed, None)
    return _recent_renderer(width, height, seed).render(n)  # render() checks n
