"""The emulator's CPU "model": a deterministic video effect chosen from the session state.

The real service runs a diffusion model; the emulator stands in for it with cheap, recognisable
effects so that an app developed offline visibly reacts to every ``set()``. Each frame is scaled to
the model's size and then transformed according to the current prompt and reference image:

- **No prompt and no image:** *passthrough*, the input scaled to the model size and nothing else.
- **A prompt containing a style keyword** gets that style. Keywords are matched as whole words,
  ignoring case (``"Anime girl"`` matches *anime*, ``"animated"`` does not); when a prompt names
  several styles, the first one in the table below wins, whatever the word order.
- **Any other prompt** gets a colour *grade* derived from its text (see below).
- **A reference image** transfers its colour palette onto the result (see below), after the
  prompt's style when both are set.
- The ``enhance`` flag of the prompt does not change the effect (the emulator has nothing to
  enhance); a blank prompt counts as no prompt.

========  ========================================  ========================================
Style     Keywords                                  What it looks like
========  ========================================  ========================================
cartoon   cartoon, anime, manga, comic, cel         flat bands of tone, bold flat colour,
                                                    dark outlines
sketch    sketch, pencil, drawing, charcoal         dark pencil lines on white paper,
                                                    lightly shaded
noir      noir, black and white, monochrome,        grey only, with hard contrast
          grayscale, greyscale
sepia     sepia, vintage, antique, old photo        faded brown-toned print
neon      neon, cyberpunk, synthwave, glow          dark scene with glowing magenta and
                                                    cyan edges
negative  negative, invert, inverted, x-ray         tones and colours inverted
pixel     pixel, pixels, pixelated, pixel art,      big square blocks of few colours
          8-bit, 8bit, 16-bit, retro game           (about 80 across)
warm      warm, sunset, golden hour, summer,        orange-tinted, slightly brighter
          desert
cold      cold, winter, snow, icy, frozen, arctic   blue-tinted, paler, less saturated
blur      blur, blurry, dream, dreamy, soft focus,  strong soft blur, lifted pastel tones
          haze
========  ========================================  ========================================

(Multi-word keywords also match with hyphens: ``black-and-white``.)

**The grade.** A prompt without a style keyword is normalised (case folded, runs of whitespace
collapsed) and hashed with SHA-256. The digest picks a chroma shift (a direction anywhere on the
colour wheel and a length of at least 14 code values, so the change is always visible, even on a
grey picture), a saturation factor (0.75 to 1.35), a luma gamma kept away from 1 (brighter or
darker) and a black lift. The same prompt always gets the same grade, on every machine; different
prompts almost always get visibly different ones.

**Palette transfer.** The reference image is decoded once (:func:`decode_reference_image`) into
the mean and standard deviation of its Y, U and V planes. Each frame's planes are then shifted and
stretched to those statistics (Reinhard-style transfer, per plane in YUV). The stretch is
clamped, so a solid-colour reference tints the picture towards its colour instead of flattening
it: luma keeps at least half its contrast.

**Cost and safety.** Effects work on yuv420p planes with lookup tables and integer numpy
arithmetic; each costs at most a few milliseconds per 1280x704 frame on one core (run
``python benchmarks/effects.py``). Output depends only on the input frame and the state, byte for
byte. An :class:`Effect` is immutable and may render from several threads at once.
"""

from __future__ import annotations

import hashlib
import io
import math
import re

import attrs
import av

from decart_sync.emulator import _filters
from decart_sync.emulator._filters import Filter, PaletteTransfer, ToneCurves
from decart_sync.emulator._planes import Workspace, new_frame, plane_views

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_SIDE",
    "STYLES",
    "Effect",
    "InvalidReferenceImage",
    "ReferenceImage",
    "Style",
    "decode_reference_image",
    "effect_for",
]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest reference image accepted, in encoded bytes."""

MAX_IMAGE_SIDE = 4096
"""The largest reference image accepted, in pixels along either side."""


# ---------------------------------------------------------------- styles


def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    # Whole words: no letter, digit or underscore may touch the keyword on either side. The words
    # of a multi-word keyword may be separated by any whitespace or hyphens.
    alternatives = (
        r"[\s\-]+".join(re.escape(word) for word in keyword.split()) for keyword in keywords
    )
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


@attrs.frozen
class Style:
    """One row of the style table: a name, the keywords that select it, and what it looks like."""

    name: str
    keywords: tuple[str, ...]
    description: str
    _filter: Filter = attrs.field(repr=False, eq=False, alias="filter")
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    @_pattern.default
    def _compile(self) -> re.Pattern[str]:
        return _keyword_pattern(self.keywords)

    def matches(self, prompt: str) -> bool:
        """Whether ``prompt`` contains one of the keywords as whole words, in any case."""
        return self._pattern.search(prompt) is not None


STYLES: tuple[Style, ...] = (
    Style(
        "cartoon",
        ("cartoon", "anime", "manga", "comic", "cel"),
        "flat bands of tone, bold flat colour, dark outlines",
        _filters.cartoon,
    ),
    Style(
        "sketch",
        ("sketch", "pencil", "drawing", "charcoal"),
        "dark pencil lines on white paper, lightly shaded",
        _filters.sketch,
    ),
    Style(
        "noir",
        ("noir", "black and white", "monochrome", "grayscale", "greyscale"),
        "grey only, with hard contrast",
        _filters.noir,
    ),
    Style(
        "sepia",
        ("sepia", "vintage", "antique", "old photo"),
        "faded brown-toned print",
        _filters.sepia,
    ),
    Style(
        "neon",
        ("neon", "cyberpunk", "synthwave", "glow"),
        "dark scene with glowing magenta and cyan edges",
        _filters.neon,
    ),
    Style(
        "negative",
        ("negative", "invert", "inverted", "x-ray"),
        "tones and colours inverted",
        _filters.negative,
    ),
    Style(
        "pixel",
        ("pixel", "pixels", "pixelated", "pixel art", "8-bit", "8bit", "16-bit", "retro game"),
        "big square blocks of few colours (about 80 across)",
        _filters.pixel,
    ),
    Style(
        "warm",
        ("warm", "sunset", "golden hour", "summer", "desert"),
        "orange-tinted, slightly brighter",
        _filters.warm,
    ),
    Style(
        "cold",
        ("cold", "winter", "snow", "icy", "frozen", "arctic"),
        "blue-tinted, paler, less saturated",
        _filters.cold,
    ),
    Style(
        "blur",
        ("blur", "blurry", "dream", "dreamy", "soft focus", "haze"),
        "strong soft blur, lifted pastel tones",
        _filters.blur,
    ),
)
"""The keyword styles, in matching order (the first style whose keyword a prompt contains wins)."""


def _style_for(prompt: str) -> Style | None:
    return next((style for style in STYLES if style.matches(prompt)), None)


# ---------------------------------------------------------------- the prompt-derived grade


def _normalise(prompt: str) -> str:
    return " ".join(prompt.casefold().split())


def _grade(prompt: str) -> ToneCurves:
    """The colour grade of a prompt that names no style (see the module docstring)."""
    digest = hashlib.sha256(_normalise(prompt).encode("utf-8")).digest()
    # Each parameter reads its own digest bytes, so they vary independently of one another.
    angle = int.from_bytes(digest[0:2], "big") / 65536 * 2 * math.pi
    length = 14 + digest[2] % 13  # The floor of 14 is what makes every grade visible.
    saturation = 0.75 + 0.6 * digest[3] / 255
    gamma = 1.15 + 0.3 * digest[4] / 255
    if digest[5] & 1:
        gamma = 1 / gamma  # brighter instead of darker
    lift = 0.08 * digest[6] / 255
    return ToneCurves(
        y=_filters.luma_curve(lambda level: lift + (1 - lift) * level**gamma),
        u=_filters.chroma_curve(saturation, shift=length * math.cos(angle)),
        v=_filters.chroma_curve(saturation, shift=length * math.sin(angle)),
    )


# ---------------------------------------------------------------- reference images


class InvalidReferenceImage(ValueError):
    """A reference image that cannot be used; the text says why, ready for a failed ack."""


@attrs.frozen
class ReferenceImage:
    """What palette transfer needs from a decoded reference image: the mean and standard
    deviation of its Y, U and V planes (video range, as in the frames it is applied to).

    The pixels themselves are not kept.
    """

    width: int
    height: int
    means: tuple[float, float, float]
    stds: tuple[float, float, float]


# How each accepted format starts: (offset, bytes) pairs, the demuxer to use, and its name.
# Naming the demuxer ourselves keeps FFmpeg from probing arbitrary bytes against every format it
# knows, video containers included.
_SIGNATURES: tuple[tuple[tuple[tuple[int, bytes], ...], str, str], ...] = (
    (((0, b"\x89PNG\r\n\x1a\n"),), "png_pipe", "PNG"),
    (((0, b"\xff\xd8\xff"),), "jpeg_pipe", "JPEG"),
    (((0, b"RIFF"), (8, b"WEBP")), "webp_pipe", "WebP"),
    (((0, b"GIF8"),), "gif_pipe", "GIF"),
    (((0, b"BM"),), "bmp_pipe", "BMP"),
)

# Statistics are taken on a thumbnail of at most this many pixels along its longer side: plenty
# for a mean and a spread, and cheap whatever the image size.
_THUMBNAIL_SIDE = 512


def _sniff(data: bytes) -> tuple[str, str]:
    """The demuxer and format name for ``data``, from its first bytes."""
    for marks, demuxer, kind in _SIGNATURES:
        if all(data[offset : offset + len(mark)] == mark for offset, mark in marks):
            return demuxer, kind
    known = ", ".join(kind for *_, kind in _SIGNATURES)
    raise InvalidReferenceImage(f"invalid image: not a recognised image format (use {known})")


def decode_reference_image(data: bytes) -> ReferenceImage:
    """Decode an encoded image (PNG, JPEG, WebP, GIF or BMP; the first frame if animated) and
    measure its colours.

    Raises :class:`InvalidReferenceImage` if ``data`` is empty, larger than
    :data:`MAX_IMAGE_BYTES`, not an image, corrupt, or larger than :data:`MAX_IMAGE_SIDE` pixels
    along a side.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise InvalidReferenceImage("invalid image: the image data is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidReferenceImage(
            f"invalid image: {len(data)} bytes is more than the {MAX_IMAGE_BYTES} bytes allowed"
        )
    demuxer, kind = _sniff(data)
    frame = _decode_first_frame(data, demuxer, kind)
    return _measure(frame)


def _decode_first_frame(data: bytes, demuxer: str, kind: str) -> av.VideoFrame:
    too_big = f"larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
    # max_pixels makes the decoder refuse oversized pictures before allocating them, both while
    # FFmpeg probes the stream and while we decode it: a small file can claim a huge picture.
    limit = {"max_pixels": str(MAX_IMAGE_SIDE * MAX_IMAGE_SIDE)}
    try:
        with av.open(io.BytesIO(data), format=demuxer, options=limit) as container:
            if not container.streams.video:
                raise InvalidReferenceImage(f"invalid image: no picture in the {kind} data")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                raise InvalidReferenceImage(f"invalid image: {width}x{height} is {too_big}")
            stream.codec_context.options = limit
            frame = next(container.decode(stream), None)
    except av.FFmpegError:
        frame = None
    if not isinstance(frame, av.VideoFrame):
        raise InvalidReferenceImage(
            f"invalid image: the {kind} data is corrupt or the picture is {too_big}"
        )
    if frame.width > MAX_IMAGE_SIDE or frame.height > MAX_IMAGE_SIDE:
        raise InvalidReferenceImage(f"invalid image: {frame.width}x{frame.height} is {too_big}")
    return frame


def _measure(frame: av.VideoFrame) -> ReferenceImage:
    shrink = max(1.0, max(frame.width, frame.height) / _THUMBNAIL_SIDE)
    # yuv420p at video range, exactly like the frames the statistics are applied to (a JPEG
    # decodes to full-range YUV, a PNG to RGB: the scaler converts both).
    thumbnail = Workspace().scale(
        "thumbnail",
        frame,
        max(1, round(frame.width / shrink)),
        max(1, round(frame.height / shrink)),
        interpolation="AREA",
    )
    y, u, v = plane_views(thumbnail)
    return ReferenceImage(
        width=frame.width,
        height=frame.height,
        means=(float(y.mean()), float(u.mean()), float(v.mean())),
        stds=(float(y.std()), float(u.std()), float(v.std())),
    )


# ---------------------------------------------------------------- effects


@attrs.frozen(eq=False)
class Effect:
    """A video effect: :meth:`render` turns any input frame into a model-sized output frame.

    Build one with :func:`effect_for`. Immutable and cheap to build; :meth:`render` may run in
    several threads at once.
    """

    name: str
    """``"passthrough"``, a style name (``"sketch"``), ``"grade"``, or any of these followed by
    ``"+palette"`` when a reference image is set (``"palette"`` alone for an image without a
    prompt)."""
    _filter: Filter = attrs.field(repr=False, alias="filter")
    _palette: PaletteTransfer | None = attrs.field(default=None, repr=False, alias="palette")
    _workspace: Workspace = attrs.field(init=False, factory=Workspace, repr=False)

    def render(self, frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
        """A new yuv420p frame of ``width`` x ``height``: ``frame`` (any size and pixel format)
        scaled and transformed. Timestamps are left for the caller to set."""
        if width <= 0 or height <= 0:
            raise ValueError(f"output size must be positive, got {width}x{height}")
        source = self._workspace.scale("model-size", frame, width, height)
        output, planes = new_frame(width, height)
        self._filter(source, plane_views(source), planes, self._workspace)
        if self._palette is not None:
            self._palette(planes)
        return output


def effect_for(prompt: str | None, image: ReferenceImage | None) -> Effect:
    """The effect for a session state: its prompt text and decoded reference image, either of
    which may be unset (``None``; a blank prompt counts as unset)."""
    if prompt is not None and not prompt.strip():
        prompt = None
    filter_: Filter
    if prompt is None:
        name, filter_ = "passthrough", _filters.passthrough
    else:
        style = _style_for(prompt)
        if style is not None:
            name, filter_ = style.name, style._filter
        else:
            name, filter_ = "grade", _grade(prompt)
    if image is None:
        return Effect(name, filter_)
    palette = PaletteTransfer(image.means, image.stds)
    name = "palette" if prompt is None else f"{name}+palette"
    return Effect(name, filter_, palette)
