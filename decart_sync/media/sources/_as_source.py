"""Anything ``connect()`` accepts as input, turned into a :class:`VideoSource`."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping

import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._base import VideoSource
from decart_sync.media.sources._file import video_file
from decart_sync.media.sources._pull import CaptureSource, IterableSource
from decart_sync.media.sources._track_source import TrackSource

__all__ = ["as_source"]

ACCEPTED = (
    "a VideoSource (camera(), video_file(), test_pattern(), PushSource()), an aiortc "
    "MediaStreamTrack of kind 'video', an iterable or generator of HxWx3 uint8 BGR numpy frames, "
    "an object with read() -> (ok, frame) such as cv2.VideoCapture, or a video file path"
)


def as_source(obj: object) -> VideoSource:
    """Whatever ``connect()`` was given as input, as a :class:`VideoSource`.

    Accepts a VideoSource (returned as is), an aiortc video track, a str or path of a video file
    (which must exist), an object with ``read() -> (ok, frame)``, or an iterable of frames (a
    4-D numpy array counts as a sequence of frames). May open a file: call it off the loop thread.
    """
    if isinstance(obj, VideoSource):
        return obj
    if isinstance(obj, MediaStreamTrack):
        return TrackSource(obj)
    if isinstance(obj, (str, os.PathLike)):
        return video_file(obj)
    if isinstance(obj, np.ndarray):
        if obj.ndim == 4:
            return IterableSource(obj)
        raise InvalidInputError(
            f"got a single numpy array of shape {obj.shape}; to stream one frame, use "
            "PushSource().send(frame) or pass [frame]. Accepted: " + ACCEPTED
        )
    # File objects have read() and are iterable, but yield bytes, not frames.
    if isinstance(obj, (bytes, bytearray, memoryview, io.IOBase, Mapping)):
        raise InvalidInputError(f"expected {ACCEPTED}; got {type(obj).__name__}")
    if callable(getattr(obj, "read", None)):
        return CaptureSource(obj)
    if isinstance(obj, Iterable):
        return IterableSource(obj)
    raise InvalidInputError(f"expected {ACCEPTED}; got {type(obj).__name__}")
