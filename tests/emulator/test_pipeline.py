"""The frame pipeline on its own: newest-input-wins rendering, state changes that take effect
before they are acknowledged, pacing and freezing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterator

import av
import numpy as np
import pytest
from _support.pictures import pattern
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from rawclient import INPUT_SIZE

from decart_sync.emulator.effects import Effect, effect_for
from decart_sync.emulator.pipeline import FramePipeline
from decart_sync.models import ModelDefinition

MODEL = ModelDefinition("test-model", "/v1/stream", 30, 320, 180)


class QueueTrack(MediaStreamTrack):
    """A remote track stand-in: yields what the test puts in; None ends it."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue()

    async def recv(self) -> av.VideoFrame:
        frame = await self.queue.get()
        if frame is None:
            raise MediaStreamError
        return frame


class GatedEffect:
    """An effect whose renders wait until the test opens the gate (to make the renderer busy),
    then render as ``inner`` does."""

    name = "gated"

    def __init__(self, inner: Effect | None = None) -> None:
        self.inner = inner or effect_for(None, None)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.rendered = 0

    def render(self, frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
        self.started.set()
        assert self.gate.wait(10)
        self.rendered += 1
        return self.inner.render(frame, width, height)


def _input() -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(pattern(*INPUT_SIZE), format="rgb24")


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(width=320, height=180, format="rgb24").to_ndarray().astype(np.int16)


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _run(
    executor: concurrent.futures.Executor,
    body: Callable[[FramePipeline, QueueTrack, list[str]], Awaitable[None]],
) -> list[str]:
    events: list[str] = []

    async def main() -> None:
        pipeline = FramePipeline(MODEL, executor, lambda: events.append("first output"))
        track = QueueTrack()
        pipeline.attach_input(track)
        try:
            await asyncio.wait_for(body(pipeline, track, events), 20)
        finally:
            await pipeline.close()

    asyncio.run(main())
    return events


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def test_a_new_effect_shows_in_the_very_next_frame(
    executor: concurrent.futures.Executor,
) -> None:
    async def body(pipeline: FramePipeline, track: QueueTrack, events: list[str]) -> None:
        picture = _input()
        await track.queue.put(picture)
        first = await pipeline.next_output_frame()
        assert events == ["first output"]
        assert np.abs(_rgb(first) - _rgb(picture)).mean() < 3  # passthrough
        negative = GatedEffect(effect_for("negative", None))
        changing = asyncio.ensure_future(pipeline.set_effect(negative))  # type: ignore[arg-type]
        # No new input arrives: the last one is rendered again, and set_effect waits for it.
        await _until(negative.started.is_set)
        assert not changing.done()
        negative.gate.set()
        await changing
        second = await pipeline.next_output_frame()
        assert np.abs(_rgb(second) - (255 - _rgb(picture))).mean() < 3

    _run(executor, body)


def test_inputs_that_arrive_while_rendering_are_dropped_but_the_newest(
    executor: concurrent.futures.Executor,
) -> None:
    gated = GatedEffect()

    async def body(pipeline: FramePipeline, track: QueueTrack, events: list[str]) -> None:
        await pipeline.set_effect(gated)  # type: ignore[arg-type]
        await track.queue.put(_input())
        await _until(gated.started.is_set)  # the renderer is busy with the first input
        for _ in range(4):
            await track.queue.put(_input())
        await _until(lambda: pipeline.frames_in == 5)
        gated.gate.set()
        await pipeline.next_output_frame()
        # Of the four inputs that came while the renderer was busy, only the newest is rendered.
        await _until(lambda: gated.rendered == 2)
        assert pipeline.frames_dropped == 3

    _run(executor, body)


def test_output_is_paced_with_90khz_timestamps_and_freezes(
    executor: concurrent.futures.Executor,
) -> None:
    async def body(pipeline: FramePipeline, track: QueueTrack, events: list[str]) -> None:
        await track.queue.put(_input())
        loop = asyncio.get_running_loop()
        frames = [await pipeline.next_output_frame() for _ in range(4)]
        started = loop.time()
        frames += [await pipeline.next_output_frame() for _ in range(6)]
        assert loop.time() - started >= 5 / MODEL.fps  # paced, not as fast as possible
        steps = np.diff([f.pts for f in frames])
        assert (steps > 0).all() and (steps % 3000 == 0).all()
        assert all(f.time_base == frames[0].time_base for f in frames)
        assert len({id(f) for f in frames}) == len(frames)  # repeats are copies

        pipeline.freeze(30)
        frozen = _rgb(await pipeline.next_output_frame())
        await pipeline.set_effect(effect_for("negative", None))
        assert np.abs(_rgb(await pipeline.next_output_frame()) - frozen).mean() < 1
        pipeline.unfreeze()
        assert np.abs(_rgb(await pipeline.next_output_frame()) - frozen).mean() > 30
        assert pipeline.frames_out == 13

    _run(executor, body)


def test_closing_ends_the_output_track(executor: concurrent.futures.Executor) -> None:
    async def body(pipeline: FramePipeline, track: QueueTrack, events: list[str]) -> None:
        waiting = asyncio.ensure_future(pipeline.output.recv())  # no input yet: waits
        await asyncio.sleep(0)
        await pipeline.close()
        with pytest.raises(MediaStreamError):
            await waiting
        assert pipeline.output.readyState == "ended"

    _run(executor, body)


def test_effects_are_immutable_values() -> None:
    assert isinstance(effect_for(None, None), Effect)
    assert effect_for(None, None).name == "passthrough"


def test_a_closed_input_reads_and_drops_frames_until_it_is_opened(
    executor: concurrent.futures.Executor,
) -> None:
    # What a LiveKit session needs: its client may publish before its initial state arrived.
    events: list[str] = []

    async def main() -> None:
        pipeline = FramePipeline(
            MODEL, executor, lambda: events.append("first output"), input_open=False
        )
        track = QueueTrack()
        pipeline.attach_input(track)
        try:
            for _ in range(3):
                await track.queue.put(_input())
            await asyncio.wait_for(_until(lambda: pipeline.frames_in == 3), 20)
            assert pipeline.frames_dropped == 3
            assert track.queue.empty()  # read, not left queued
            pipeline.open_input()
            await track.queue.put(_input())
            await asyncio.wait_for(pipeline.next_output_frame(), 20)
            assert events == ["first output"]
            assert (pipeline.frames_in, pipeline.frames_dropped) == (4, 3)
        finally:
            await pipeline.close()

    asyncio.run(main())
