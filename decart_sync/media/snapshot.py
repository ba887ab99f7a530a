"""Single frames as images: JPEG bytes for web snapshots and MJPEG, JPEG or PNG files on disk.

::

    from decart_sync.media import encode_jpeg, save_frame

    data = encode_jpeg(session.latest(), quality=85)   # bytes, ready for an HTTP response
    save_frame(session.latest(), "shot.png")           # format chosen by the extension

Frames are what sessions hand out: a numpy ``HxWx3`` uint8 BGR array or an ``av.VideoFrame``.
Encoding goes through PyAV (FFmpeg's ``mjpeg`` and ``png`` encoders). A :class:`JpegEncoder`
keeps one codec context open and reuses it for every frame of the same size, which is what the
MJPEG broadcaster does; :func:`encode_jpeg` keeps one encoder per thread for the same reason.
"""

from __future__ import annotations

import os
import pathlib
import threading
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import VideoReformatter

from decart_sync.errors import InvalidInputError

__all__ = ["JpegEncoder", "encode_jpeg", "encode_png", "save_frame"]

DEFAULT_QUALITY = 85

_JPEG_SUFFIXES = (".jpg", ".jpeg")
_PNG_SUFFIXES = (".png",)


def _quality_scale(quality: int) -> int:
    """FFmpeg's JPEG quantiser scale (2 best .. 31 worst) for a 1-100 quality (100 best)."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidInputError(f"JPEG quality must be an int from 1 to 100, got {quality!r}")
    return 2 + round((100 - quality) * 29 / 99)


def as_video_frame(frame: Any) -> av.VideoFrame:
    """``frame`` as an av.VideoFrame: numpy BGR arrays are wrapped, VideoFrames pass through.

    Raises InvalidInputError for anything else, naming what was expected.
    """
    if isinstance(frame, av.VideoFrame):
        return frame
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InvalidInputError(
                f"expected an HxWx3 uint8 BGR frame, got an array of shape {frame.shape} "
                f"and dtype {frame.dtype}"
            )
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
    raise InvalidInputError(
        f"expected a numpy HxWx3 uint8 BGR array or an av.VideoFrame, got {type(frame).__name__}"
    )


class JpegEncoder:
    """Encodes frames to JPEG bytes, reusing one codec context while the frame size stays the
    same. Not thread-safe: give each thread its own (``encode_jpeg`` does)."""

    def __init__(self, quality: int = DEFAULT_QUALITY) -> None:
        self.quality = quality
        self._scale = _quality_scale(quality)
        self._context: VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._reformatter = VideoReformatter()
        self._to_444 = VideoReformatter()  # its own, so neither re-creates its scaler per frame
        self._count = 0

    def _context_for(self, width: int, height: int) -> VideoCodecContext:
        if self._context is None or self._size != (width, height):
            context = CodecContext.create("mjpeg", "w")
            context.width, context.height = width, height
            # Full-range 4:2:0, what every browser and image viewer expects from a JPEG.
            context.pix_fmt = "yuvj420p"
            context.time_base = Fraction(1, 1000)
            # A fixed quantiser (qmin = qmax) gives the same quality to every frame; the
            # encoder's default rate control would instead aim at a bitrate.
            context.qmin = context.qmax = self._scale
            context.open()
            self._context, self._size = context, (width, height)
        return self._context

    def encode(self, frame: Any) -> bytes:
        """One frame (numpy BGR or av.VideoFrame) as a complete JPEG file's bytes."""
        source = as_video_frame(frame)
        context = self._context_for(source.width, source.height)
        if source.format.name in ("bgr24", "rgb24"):
            # swscale's packed-RGB to 4:2:0 path rounds neutral chroma down to 127, which
            # gives greys a green cast; converting through 4:4:4 first keeps it at 128.
            source = self._to_444.reformat(source, format="yuvj444p", threads=1)
        converted = self._reformatter.reformat(source, format="yuvj420p", threads=1)
        if converted is source:
            # Already in the encoder's format: encode a copy, since encoding stamps a pts on
            # the frame, which may belong to someone else.
            converted = av.VideoFrame.from_ndarray(source.to_ndarray(), format="yuvj420p")
        converted.pts = self._count
        converted.time_base = context.time_base
        self._count += 1
        packets = context.encode(converted)
        if not packets:
            raise InvalidInputError("the JPEG encoder produced no data for this frame")
        return bytes(packets[0])


_per_thread = threading.local()


def encode_jpeg(frame: Any, quality: int = DEFAULT_QUALITY) -> bytes:
    """``frame`` (numpy HxWx3 uint8 BGR or av.VideoFrame) as JPEG bytes. Safe from any thread;
    each thread reuses its own encoder."""
    encoders: dict[int, JpegEncoder] | None = getattr(_per_thread, "jpeg", None)
    if encoders is None:
        encoders = _per_thread.jpeg = {}
    encoder = encoders.get(quality)
    if encoder is None:
        encoder = encoders[quality] = JpegEncoder(quality)
    return encoder.encode(frame)


def encode_png(frame: Any) -> bytes:
    """``frame`` as lossless PNG bytes (8-bit RGB)."""
    source = as_video_frame(frame)
    context = CodecContext.create("png", "w")
    context.width, context.height = source.width, source.height
    context.pix_fmt = "rgb24"
    context.time_base = Fraction(1, 1000)
    context.open()
    converted = source.reformat(format="rgb24")
    if converted is source:
        converted = av.VideoFrame.from_ndarray(source.to_ndarray(), format="rgb24")
    converted.pts = 0
    packets = [*context.encode(converted), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


def save_frame(
    frame: Any, path: str | os.PathLike[str], *, quality: int = DEFAULT_QUALITY
) -> pathlib.Path:
    """Write ``frame`` to ``path`` as JPEG (``.jpg``/``.jpeg``, at ``quality``) or PNG
    (``.png``), chosen by the extension; returns the path written."""
    target = pathlib.Path(os.fspath(path))
    suffix = target.suffix.lower()
    if suffix in _JPEG_SUFFIXES:
        data = encode_jpeg(frame, quality)
    elif suffix in _PNG_SUFFIXES:
        data = encode_png(frame)
    else:
        raise InvalidInputError(
            f"cannot tell the image format of {str(target)!r}: use a .jpg, .jpeg or .png name"
        )
    target.write_bytes(data)
    return target
