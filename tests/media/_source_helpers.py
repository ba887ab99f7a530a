"""Helpers of the media source tests: running tracks on a real loop, reading the grey level that
identifies a frame (``_support.pictures.solid`` makes them), and short video files written with
PyAV."""

from __future__ import annotations

import asyncio
import itertools
import pathlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import av
from _support.pictures import solid
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run ``coro`` on a fresh event loop, failing the test if it takes longer than ``timeout``."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def level_of(frame: av.VideoFrame) -> int:
    """The grey level a received frame shows (its mean, back in BGR)."""
    return round(float(frame.to_ndarray(format="bgr24").mean()))


def pts_steps(frames: list[av.VideoFrame]) -> list[int]:
    """The gaps between consecutive frames' pts (every frame must carry one)."""
    stamps = [f.pts for f in frames]
    assert None not in stamps, stamps
    return [b - a for a, b in itertools.pairwise(s for s in stamps if s is not None)]


async def take(track: MediaStreamTrack, count: int) -> list[av.VideoFrame]:
    return [await recv_video(track) for _ in range(count)]


async def recv_video(track: MediaStreamTrack) -> av.VideoFrame:
    frame = await track.recv()
    assert isinstance(frame, av.VideoFrame)
    return frame


async def take_all(track: MediaStreamTrack, limit: int = 1000) -> list[av.VideoFrame]:
    """Frames until the track ends; fails if it has not ended after ``limit`` frames."""
    frames = []
    for _ in range(limit):
        try:
            frames.append(await recv_video(track))
        except MediaStreamError:
            return frames
    raise AssertionError(f"the track did not end within {limit} frames")


def write_video(
    path: pathlib.Path, levels: list[int], fps: int, width: int = 64, height: int = 48
) -> pathlib.Path:
    """An H.264 MP4 whose frame i is a solid grey of ``levels[i]``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for level in levels:
            frame = av.VideoFrame.from_ndarray(solid(level, height, width), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def assert_close_levels(got: list[int], expected: list[int], tolerance: int = 4) -> None:
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected, strict=True):
        assert abs(g - e) <= tolerance, (got, expected)
