"""PushSource: session.send(frame) from any thread, checked at once, latest wins, never stalls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import av
import numpy as np
import pytest
from _source_helpers import level_of, pts_steps, recv_video, run, take
from _support.pictures import solid
from _support.waiting import until
from aiortc.mediastreams import MediaStreamError

from decart_sync.errors import InvalidInputError, SessionClosedError
from decart_sync.media import PushSource

FPS = 100


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (np.zeros((48, 64), np.uint8), "shape (48, 64)"),
        (np.zeros((48, 64, 4), np.uint8), "shape (48, 64, 4)"),
        (np.zeros((48, 64, 3), np.float64), "float64"),
        (np.zeros((0, 64, 3), np.uint8), "shape (0, 64, 3)"),
        ([[1, 2, 3]], "list"),
        (None, "NoneType"),
    ],
)
def test_send_checks_the_frame_in_the_callers_thread(bad: object, detail: str) -> None:
    source = PushSource()
    with pytest.raises(InvalidInputError) as caught:
        source.send(bad)  # type: ignore[arg-type]
    assert "expected an HxWx3 uint8 BGR numpy array" in str(caught.value)
    assert detail in str(caught.value)
    assert source.frames_received == 0


def test_an_rgb_push_source_says_rgb() -> None:
    with pytest.raises(InvalidInputError, match="HxWx3 uint8 RGB"):
        PushSource(pixel_format="rgb24").send(np.zeros((2, 2), np.uint8))
    with pytest.raises(InvalidInputError, match="pixel_format"):
        PushSource(pixel_format="yuv420p")  # type: ignore[arg-type]


def test_the_newest_frame_wins_and_the_rest_are_counted_as_dropped(
    executor: concurrent.futures.Executor,
) -> None:
    source = PushSource()
    for level in (10, 50, 90):
        source.send(solid(level))
    assert (source.frames_received, source.frames_dropped) == (3, 2)

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=64, height=48, fps=FPS, executor=executor), 1)

    (frame,) = run(receive())
    assert abs(level_of(frame) - 90) <= 3
    source.send(solid(120))  # the last one was sent, so this one replaces nothing unsent
    assert source.frames_dropped == 2


def test_the_last_frame_repeats_when_nothing_new_comes(
    executor: concurrent.futures.Executor,
) -> None:
    source = PushSource()
    source.send(solid(77))

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=32, height=24, fps=FPS, executor=executor), 4)

    frames = run(receive())
    assert [abs(level_of(f) - 77) <= 3 for f in frames] == [True] * 4
    assert all(step > 0 for step in pts_steps(frames))
    assert source.frames_sent == 4
    assert source.frames_dropped == 0


def test_a_pushed_frame_goes_out_when_it_arrives_not_at_a_slot(
    executor: concurrent.futures.Executor,
) -> None:
    """At 2 fps: B, pushed 0.6 s after A went out, goes out then, stamped then. On a grid of
    slots the 0.5 s slot would have repeated A, and B would have waited for the 1.0 s one."""
    source = PushSource()
    source.send(solid(40))

    async def receive() -> tuple[av.VideoFrame, av.VideoFrame, float]:
        loop = asyncio.get_running_loop()
        track = source.open_track(width=64, height=48, fps=2, executor=executor)
        first = await recv_video(track)
        sent_first = loop.time()
        pending = asyncio.ensure_future(recv_video(track))
        await until(lambda: loop.time() >= sent_first + 0.6)
        assert not pending.done()  # nothing new, and the repeat is not due before 1.0 s
        pushed_at = loop.time()
        threading.Thread(target=source.send, args=(solid(160),)).start()
        return first, await pending, pushed_at - sent_first

    first, second, pushed_after = run(receive())
    assert abs(level_of(first) - 40) <= 3 and abs(level_of(second) - 160) <= 3
    assert second.pts is not None and first.pts == 0
    assert second.pts >= round(pushed_after * 90000)  # stamped when it went out...
    assert second.pts < 90000  # ...which was before the next slot of a grid


def test_the_track_waits_for_the_first_frame(executor: concurrent.futures.Executor) -> None:
    source = PushSource()

    async def receive() -> av.VideoFrame:
        track = source.open_track(width=64, height=48, fps=FPS, executor=executor)
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)
        assert not pending.done()
        threading.Thread(target=source.send, args=(solid(200),)).start()
        frame = await pending
        assert isinstance(frame, av.VideoFrame)
        return frame

    assert abs(level_of(run(receive())) - 200) <= 3


def test_closing_wakes_a_track_still_waiting_for_its_first_frame(
    executor: concurrent.futures.Executor,
) -> None:
    source = PushSource()

    async def receive() -> None:
        track = source.open_track(width=64, height=48, fps=FPS, executor=executor)
        pending = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)
        assert not pending.done()  # no frame yet, and no deadline to wake it
        threading.Thread(target=source.close).start()
        with pytest.raises(MediaStreamError):
            await pending

    run(receive(), timeout=5)


def test_frames_sent_from_another_thread_flow_through(
    executor: concurrent.futures.Executor,
) -> None:
    source = PushSource()
    stop = threading.Event()
    send_times: list[float] = []

    def producer() -> None:
        level = 0
        while not stop.is_set():
            started = time.monotonic()
            source.send(solid(level % 250, 240, 320))
            send_times.append(time.monotonic() - started)
            level += 10
            time.sleep(0.002)

    thread = threading.Thread(target=producer)
    thread.start()
    try:

        async def receive() -> list[av.VideoFrame]:
            track = source.open_track(width=64, height=48, fps=FPS, executor=executor)
            return await take(track, 20)

        frames = run(receive())
    finally:
        stop.set()
        thread.join()
    assert len({level_of(f) for f in frames}) > 5  # new frames kept arriving
    assert source.frames_dropped > 0  # the producer is faster than the track
    assert min(pts_steps(frames)) >= 90000 // FPS  # ...which still keeps to the frame rate
    assert max(send_times) < 0.1  # send() never waited for the track


def test_a_sent_array_is_copied(executor: concurrent.futures.Executor) -> None:
    source = PushSource()
    buffer = solid(30)
    source.send(buffer)
    buffer[...] = 220  # the caller reuses its buffer

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=64, height=48, fps=FPS, executor=executor), 1)

    assert abs(level_of(run(receive())[0]) - 30) <= 3


@pytest.mark.parametrize("size", [(32, 24), (64, 48)])
def test_av_frames_can_be_pushed_and_are_left_untouched(
    executor: concurrent.futures.Executor, size: tuple[int, int]
) -> None:
    width, height = size
    source = PushSource()
    given = av.VideoFrame.from_ndarray(solid(140, height, width), format="bgr24")
    given = given.reformat(format="yuv420p")
    source.send(given)

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=64, height=48, fps=FPS, executor=executor), 2)

    frames = run(receive())
    assert [(f.width, f.height) for f in frames] == [(64, 48)] * 2
    assert abs(level_of(frames[0]) - 140) <= 3
    assert given.pts is None  # the caller's frame was not stamped
    assert frames[0] is not frames[1] and frames[0].pts != frames[1].pts


def test_close_ends_the_track_and_refuses_more_frames(
    executor: concurrent.futures.Executor,
) -> None:
    source = PushSource()
    source.send(solid(1))

    async def receive() -> None:
        track = source.open_track(width=64, height=48, fps=FPS, executor=executor)
        await track.recv()
        threading.Thread(target=source.close).start()
        await until(lambda: source.closed)
        with pytest.raises(MediaStreamError):
            await track.recv()

    run(receive())
    with pytest.raises(SessionClosedError, match="closed"):
        source.send(solid(2))
