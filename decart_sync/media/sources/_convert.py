"""Input frames checked and converted into frames a source track can stamp and send.

A user's frame (a numpy HxWx3 uint8 array in BGR or RGB order, or an ``av.VideoFrame``) becomes
a yuv420p frame at the model's size. The conversion (swscale) is blocking and runs in an
executor, never on the loop thread.
"""

from __future__ import annotations

from typing import Any, Literal

import av
import numpy as np

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._feed import BadFrame

__all__ = [
    "PIXEL_FORMATS",
    "PixelFormat",
    "check_pixel_format",
    "checked_frame",
    "convert_frame",
    "frame_problem",
    "fresh_frame",
    "needs_conversion",
    "to_track_frame",
]

PixelFormat = Literal["bgr24", "rgb24"]

# Pixel layouts a numpy frame may come in, and the word users know them by.
PIXEL_FORMATS = {"bgr24": "BGR", "rgb24": "RGB"}


def check_pixel_format(pixel_format: str) -> None:
    if pixel_format not in PIXEL_FORMATS:
        raise InvalidInputError(
            f"pixel_format must be one of {sorted(PIXEL_FORMATS)}, got {pixel_format!r}"
        )


def frame_problem(frame: object, pixel_format: str = "bgr24") -> tuple[str, str] | None:
    """Why ``frame`` cannot be sent, as ``(kind, message)``, or None if it can.

    Any height and width are fine (frames are resized); the layout must be HxWx3 uint8.
    """
    if isinstance(frame, av.VideoFrame):
        return None
    expected = f"expected an HxWx3 uint8 {PIXEL_FORMATS[pixel_format]} numpy array"
    if not isinstance(frame, np.ndarray):
        kind = type(frame).__name__
        return f"type={kind}", f"{expected} (or an av.VideoFrame), got {kind}"
    got = f"got a {frame.dtype} array of shape {frame.shape}"
    if frame.ndim != 3:
        return f"ndim={frame.ndim}", f"{expected}, {got}"
    if frame.shape[2] != 3:
        return f"channels={frame.shape[2]}", f"{expected}, {got}"
    if frame.dtype != np.uint8:
        return f"dtype={frame.dtype}", f"{expected}, {got}"
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        return "empty", f"{expected}, {got}"
    return None


def checked_frame(
    frame: object, pixel_format: str = "bgr24"
) -> np.ndarray[Any, Any] | av.VideoFrame:
    """``frame`` itself, once checked; raises BadFrame if it cannot be sent (see
    :func:`frame_problem`)."""
    problem = frame_problem(frame, pixel_format)
    if problem is not None:
        raise BadFrame(*problem)
    assert isinstance(frame, (np.ndarray, av.VideoFrame))
    return frame


def to_track_frame(
    frame: object, width: int, height: int, pixel_format: str = "bgr24"
) -> av.VideoFrame:
    """``frame`` (numpy HxWx3 uint8 or av.VideoFrame), checked, as a new ``width`` x ``height``
    yuv420p frame that the track may stamp.

    Blocking (swscale runs here, releasing the GIL): call it in an executor, not on the loop.
    Raises BadFrame for a frame of the wrong layout.
    """
    return convert_frame(checked_frame(frame, pixel_format), width, height, pixel_format)


def convert_frame(
    frame: np.ndarray[Any, Any] | av.VideoFrame, width: int, height: int, pixel_format: str
) -> av.VideoFrame:
    """A frame already checked, as a new ``width`` x ``height`` yuv420p frame that nobody else
    holds, so the track may stamp it. Blocking, like :func:`to_track_frame`."""
    # threads=1: PyAV otherwise starts a swscale worker per core for each conversion, that is
    # new threads for every frame; frames are already converted in parallel with each other.
    if isinstance(frame, av.VideoFrame):
        converted = frame.reformat(width, height, format="yuv420p", threads=1)
        # reformat() hands back the frame itself when nothing needs to change.
        return fresh_frame(converted) if converted is frame else converted
    # Wrapping the buffer avoids a copy; swscale reads it once to build the new frame.
    if frame.flags.c_contiguous:
        wrapped = av.VideoFrame.from_numpy_buffer(frame, format=pixel_format)
    else:
        wrapped = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=pixel_format)
    return wrapped.reformat(width, height, format="yuv420p", threads=1)


def fresh_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A new frame object with ``frame``'s yuv420p pixels (even sizes only).

    The track stamps each frame it sends with its own pts. A frame that is sent again, or that
    someone else may hold (a user's frame, a relayed one), must not have its pts changed under
    them, so those are copied: one memcpy of the planes, about 50 us at 1280x704.
    """
    return av.VideoFrame.from_numpy_buffer(frame.to_ndarray(), format="yuv420p")


def needs_conversion(frame: av.VideoFrame, width: int, height: int) -> bool:
    """Whether an av.VideoFrame must go through swscale to become a track frame."""
    return frame.width != width or frame.height != height or frame.format.name != "yuv420p"
