"""Reading back what the SDK wrote (snapshots, MJPEG parts, recordings), decoded with PyAV
into BGR arrays as a user's OpenCV code would see them."""

from __future__ import annotations

import io
import pathlib
from collections.abc import Callable

import av
import numpy as np


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG as an HxWx3 BGR array."""
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


def video_frames(
    path: pathlib.Path | str, keep: Callable[[float], bool] = lambda t: True
) -> list[tuple[float, np.ndarray | None]]:
    """(time, BGR pixels) of every frame of a video file; pixels only where ``keep(time)``."""
    with av.open(str(path)) as container:
        return [
            (t, frame.to_ndarray(format="bgr24") if keep(t) else None)
            for frame in container.decode(video=0)
            for t in (float(frame.time),)
        ]


def decode_video(path: pathlib.Path | str) -> tuple[list[float], tuple[int, int], float]:
    """Every frame time of a video file, its size, and the container's duration (seconds)."""
    times = [t for t, _ in video_frames(path, keep=lambda t: False)]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        return times, size, (container.duration or 0) / av.time_base
