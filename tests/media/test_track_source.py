"""A user's aiortc track as input: drained continuously, resized, re-stamped, ended with it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions

import av
import numpy as np
import pytest
from _source_helpers import level_of, pts_steps, run, take, take_all
from _support.pictures import solid
from _support.waiting import until
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_sync.errors import DecartSDKError
from decart_sync.media import as_source


class CountingTrack(MediaStreamTrack):
    """Frames as fast as they are asked for, each a grey level one step up; ends after
    ``limit`` frames if given."""

    kind = "video"

    def __init__(self, size: tuple[int, int] = (320, 240), limit: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.limit = limit
        self.produced = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or (self.limit is not None and self.produced >= self.limit):
            raise MediaStreamError
        await asyncio.sleep(0.001)
        width, height = self.size
        frame = av.VideoFrame.from_ndarray(solid(self.produced % 256, height, width), "bgr24")
        frame.pts = self.produced * 7
        frame.time_base = fractions.Fraction(1, 1000)
        self.produced += 1
        return frame


def test_frames_are_resized_and_stamped_on_our_clock(
    executor: concurrent.futures.Executor,
) -> None:
    given = CountingTrack()
    source = as_source(given)

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=64, height=48, fps=50, executor=executor), 5)

    frames = run(receive())
    assert {(f.width, f.height, f.format.name) for f in frames} == {(64, 48, "yuv420p")}
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    assert all(step >= 1800 for step in pts_steps(frames))
    # The given track is drained faster than we send, so each slot takes a newer frame.
    levels = [level_of(f) for f in frames]
    assert levels == sorted(levels) and levels[-1] - levels[0] >= 4
    source.close()


def test_the_track_ends_when_the_given_track_ends(
    executor: concurrent.futures.Executor,
) -> None:
    errors: list[DecartSDKError] = []
    source = as_source(CountingTrack(size=(64, 48), limit=3))

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(
            width=64, height=48, fps=100, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    frames = run(receive())
    assert 1 <= len(frames) <= 3
    assert source.ended
    assert errors == []


def test_close_stops_the_given_track(executor: concurrent.futures.Executor) -> None:
    given = CountingTrack(size=(64, 48))
    source = as_source(given)

    async def receive() -> None:
        track = source.open_track(width=64, height=48, fps=100, executor=executor)
        await take(track, 2)
        source.close()
        await until(lambda: given.readyState == "ended")
        with pytest.raises(MediaStreamError):
            await track.recv()

    run(receive())


def test_a_failing_track_is_reported(executor: concurrent.futures.Executor) -> None:
    class Broken(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> av.VideoFrame:
            raise RuntimeError("decoder exploded")

    errors: list[DecartSDKError] = []

    async def receive() -> list[av.VideoFrame]:
        track = as_source(Broken()).open_track(
            width=64, height=48, fps=100, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    assert run(receive()) == []
    assert len(errors) == 1 and "decoder exploded" in str(errors[0])


def test_a_frame_the_given_track_gets_wrong_is_skipped_and_reported_once(
    executor: concurrent.futures.Executor,
) -> None:
    class Garbled(CountingTrack):
        """Two frames that are not video, then good ones."""

        async def recv(self) -> av.VideoFrame:
            if self.produced < 2:
                self.produced += 1
                await asyncio.sleep(0.001)
                return np.zeros((48, 64), np.uint8)  # type: ignore[return-value]
            return await super().recv()

    errors: list[DecartSDKError] = []

    async def receive() -> list[av.VideoFrame]:
        track = as_source(Garbled(size=(64, 48), limit=6)).open_track(
            width=64, height=48, fps=100, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    frames = run(receive())
    assert frames  # the good frames still went out
    assert len(errors) == 1 and "skipped a video frame" in str(errors[0])
    assert "shape (48, 64)" in str(errors[0])
