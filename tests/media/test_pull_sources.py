"""Iterables, generators and read() captures as inputs: frames in order, bad frames skipped and
reported, a normal end ends the track quietly, close() releases what was given."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator

import av
import numpy as np
import pytest
from _source_helpers import assert_close_levels, level_of, run, take, take_all
from _support.pictures import solid
from _support.waiting import until
from aiortc.mediastreams import MediaStreamError

from decart_sync.errors import DecartSDKError, InvalidInputError
from decart_sync.media import CaptureSource, IterableSource, as_source
from decart_sync.testing import wait_until

FPS = 200  # fast slots keep these tests short; pacing itself is tested elsewhere


def test_an_iterable_plays_in_order_then_ends_quietly(
    executor: concurrent.futures.Executor,
) -> None:
    errors: list[DecartSDKError] = []
    source = as_source([solid(level, 48, 64) for level in (20, 60, 100, 140)])

    async def receive() -> tuple[list[av.VideoFrame], str]:
        track = source.open_track(
            width=32, height=24, fps=FPS, executor=executor, on_error=errors.append
        )
        frames = await take_all(track)
        return frames, track.readyState

    frames, state = run(receive())
    assert_close_levels([level_of(f) for f in frames], [20, 60, 100, 140])
    assert {(f.width, f.height, f.format.name) for f in frames} == {(32, 24, "yuv420p")}
    assert state == "ended"
    assert source.ended
    assert errors == []


def test_a_bad_frame_is_reported_once_and_skipped(executor: concurrent.futures.Executor) -> None:
    errors: list[DecartSDKError] = []
    given = [
        solid(20),
        np.zeros((48, 64), np.uint8),  # no channels
        solid(60),
        np.zeros((48, 64), np.uint8),  # the same problem again: not reported twice
        np.zeros((48, 64, 3), np.float32),  # wrong dtype
        "not a frame",
        solid(100),
    ]

    async def receive() -> list[av.VideoFrame]:
        track = as_source(given).open_track(
            width=64, height=48, fps=FPS, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    frames = run(receive())
    assert_close_levels([level_of(f) for f in frames], [20, 60, 100])
    assert all(isinstance(e, InvalidInputError) for e in errors)
    messages = [str(e) for e in errors]
    assert len(messages) == 3, messages
    assert "expected an HxWx3 uint8 BGR" in messages[0]
    assert "(48, 64)" in messages[0]
    assert "float32" in messages[1]
    assert "str" in messages[2]


def test_frames_of_any_size_are_resized(executor: concurrent.futures.Executor) -> None:
    given = [solid(50, 480, 640), solid(90, 17, 31), av.VideoFrame(width=100, height=60)]

    async def receive() -> list[av.VideoFrame]:
        track = as_source(given).open_track(width=64, height=48, fps=FPS, executor=executor)
        return await take_all(track)

    frames = run(receive())
    assert [(f.width, f.height) for f in frames] == [(64, 48)] * 3


def test_rgb_frames_can_be_declared(executor: concurrent.futures.Executor) -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255  # red first: RGB order

    async def receive() -> list[av.VideoFrame]:
        track = IterableSource([red], pixel_format="rgb24").open_track(
            width=64, height=48, fps=FPS, executor=executor
        )
        return await take_all(track)

    (frame,) = run(receive())
    r, g, b = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_a_failing_generator_is_reported_and_ends_the_track(
    executor: concurrent.futures.Executor,
) -> None:
    errors: list[DecartSDKError] = []

    def frames() -> Iterator[np.ndarray]:
        yield solid(30)
        raise OSError("the disk went away")

    async def receive() -> list[av.VideoFrame]:
        track = as_source(frames()).open_track(
            width=64, height=48, fps=FPS, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    assert len(run(receive())) == 1
    assert len(errors) == 1
    assert isinstance(errors[0], InvalidInputError)
    assert "OSError: the disk went away" in str(errors[0])


def test_close_runs_the_generators_cleanup(executor: concurrent.futures.Executor) -> None:
    cleaned = threading.Event()

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                yield solid(10)
        finally:
            cleaned.set()

    source = as_source(frames())

    async def receive() -> None:
        await take(source.open_track(width=64, height=48, fps=FPS, executor=executor), 2)

    run(receive())
    assert not cleaned.is_set()
    source.close()
    assert cleaned.is_set()
    source.close()  # idempotent


def test_close_on_the_loop_thread_cleans_up_off_it(
    executor: concurrent.futures.Executor,
) -> None:
    cleaned_in: list[threading.Thread] = []

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                yield solid(10)
        finally:
            cleaned_in.append(threading.current_thread())

    source = as_source(frames())

    async def close_on_loop() -> None:
        await take(source.open_track(width=64, height=48, fps=FPS, executor=executor), 1)
        source.close()
        await until(lambda: bool(cleaned_in))

    run(close_on_loop())
    assert cleaned_in[0] is not threading.main_thread()  # the loop ran in the main thread
    assert cleaned_in[0].name.startswith("test-media")


class FakeCapture:
    def __init__(self, levels: list[int]) -> None:
        self.levels = list(levels)
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.levels:
            return False, None
        return True, solid(self.levels.pop(0))

    def release(self) -> None:
        self.released = True


def test_a_capture_plays_until_read_fails(executor: concurrent.futures.Executor) -> None:
    errors: list[DecartSDKError] = []
    capture = FakeCapture([40, 80, 120])
    source = as_source(capture)

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(
            width=64, height=48, fps=FPS, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    assert_close_levels([level_of(f) for f in run(receive())], [40, 80, 120])
    assert errors == []
    assert source.ended
    assert not capture.released
    source.close()
    assert capture.released


def test_a_capture_can_stay_open_after_close() -> None:
    capture = FakeCapture([1])
    CaptureSource(capture, release=False).close()
    assert not capture.released


def test_a_read_that_is_not_ok_frame_is_a_failure(executor: concurrent.futures.Executor) -> None:
    errors: list[DecartSDKError] = []

    class Odd:
        def read(self) -> np.ndarray:
            return solid(1)

    async def receive() -> list[av.VideoFrame]:
        track = as_source(Odd()).open_track(
            width=64, height=48, fps=FPS, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    assert run(receive()) == []
    assert "must return (ok, frame)" in str(errors[0])


def test_close_from_another_thread_ends_the_track(executor: concurrent.futures.Executor) -> None:
    source = as_source(solid(10) for _ in iter(int, 1))  # endless

    async def receive() -> int:
        track = source.open_track(width=64, height=48, fps=30, executor=executor)
        await track.recv()
        closer = threading.Thread(target=source.close)
        closer.start()
        received = 1
        with pytest.raises(MediaStreamError):
            while True:
                await track.recv()
                received += 1
        closer.join()
        return received

    received = run(receive(), timeout=5)
    assert received < 30  # it ended within a second's worth of frames
    assert source.closed and source.ended


def test_a_new_track_carries_on_where_the_last_stopped(
    executor: concurrent.futures.Executor,
) -> None:
    source = as_source(solid(level) for level in range(10, 250, 20))

    async def receive() -> tuple[list[int], list[int], str]:
        first = source.open_track(width=64, height=48, fps=FPS, executor=executor)
        before = [level_of(f) for f in await take(first, 3)]
        second = source.open_track(width=32, height=24, fps=FPS, executor=executor)
        after = [level_of(f) for f in await take(second, 2)]
        return before, after, first.readyState

    before, after, first_state = run(receive())
    assert_close_levels(before + after, [10, 30, 50, 70, 90])
    assert first_state == "ended"  # one track at a time


def test_open_track_needs_a_running_loop_and_an_open_source() -> None:
    source = as_source([solid(1)])
    with pytest.raises(DecartSDKError, match="event loop"):
        source.open_track(width=64, height=48, fps=30, executor=None)
    source.close()

    async def reopen() -> None:
        source.open_track(width=64, height=48, fps=30, executor=None)

    with pytest.raises(InvalidInputError, match="closed"):
        run(reopen())


@pytest.mark.parametrize(
    "bad", [{"width": 0}, {"height": -2}, {"width": 63}, {"fps": 0}, {"fps": 2.5}]
)
def test_open_track_checks_its_arguments(bad: dict[str, object]) -> None:
    arguments: dict[str, object] = {"width": 64, "height": 48, "fps": 30, **bad}

    async def open_it() -> None:
        as_source([solid(1)]).open_track(executor=None, **arguments)  # type: ignore[arg-type]

    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        run(open_it())


def test_the_loops_default_executor_is_used_without_one() -> None:
    async def receive() -> list[av.VideoFrame]:
        track = as_source([solid(70)]).open_track(width=64, height=48, fps=FPS, executor=None)
        return await take_all(track)

    assert_close_levels([level_of(f) for f in run(receive())], [70])


class SlowCapture(FakeCapture):
    """A capture whose read() blocks until the test lets it go."""

    def __init__(self) -> None:
        super().__init__([])
        self.reading = threading.Event()
        self.proceed = threading.Event()
        self.in_read = False
        self.released_during_read = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.in_read = True
        self.reading.set()
        self.proceed.wait(5)
        self.in_read = False
        return True, solid(1)

    def release(self) -> None:
        self.released_during_read = self.in_read
        super().release()


@pytest.mark.parametrize("read_finishes_first", [True, False])
def test_close_never_releases_under_a_read_in_progress(
    executor: concurrent.futures.Executor, read_finishes_first: bool
) -> None:
    capture = SlowCapture()
    source = as_source(capture)

    async def receive() -> None:
        track = source.open_track(width=64, height=48, fps=FPS, executor=executor)
        pending = asyncio.ensure_future(track.recv())
        await until(capture.reading.is_set)
        closer = threading.Thread(target=source.close)
        closer.start()
        if read_finishes_first:
            await until(lambda: source.closed)
            capture.proceed.set()  # close() is still waiting for the read
            await until(lambda: not closer.is_alive())
        else:
            await until(lambda: not closer.is_alive())  # close() gave up waiting
            assert not capture.released
            capture.proceed.set()  # now the reader releases on its way out
        with pytest.raises(MediaStreamError):
            await pending

    run(receive(), timeout=5)
    wait_until(lambda: capture.released, 5.0, "the capture to be released")
    assert not capture.released_during_read
