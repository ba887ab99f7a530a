"""Measuring latency per frame: numbers stamped into frames and read back after the trip
(``decart_sync.media.timecode``), and when a PushSource's track took each frame (``on_taken``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from decart_sync.media import PushSource, render_test_pattern
from decart_sync.media.timecode import (
    MODULUS,
    StampedPattern,
    Timecode,
    luma_plane,
    read_number,
    stamped_test_pattern,
    unwrap,
)


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-tc")
    yield executor
    executor.shutdown(wait=True)


def _through_a_codec(image: np.ndarray, width: int, height: int) -> av.VideoFrame:
    """``image`` encoded as H.264 at ``width`` x ``height`` and decoded again, as a model's
    output comes back: resized and lossy."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "35"}
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
        width=width, height=height, format="yuv420p"
    )
    decoder = av.CodecContext.create("h264", "r")
    decoded = [
        out
        for packet in [*encoder.encode(frame), *encoder.encode(None)]
        for out in decoder.decode(packet)
    ]
    decoded += decoder.decode(None)
    assert len(decoded) == 1
    return decoded[0]


@pytest.mark.parametrize("number", [0, 1, 1234, MODULUS - 1])
def test_a_stamped_frame_reads_back_after_a_resize_and_a_lossy_encode(number: int) -> None:
    image = stamped_test_pattern(number, 640, 352)
    received = _through_a_codec(image, 1280, 704)
    assert read_number(received.to_ndarray(format="bgr24")) == number
    assert read_number(luma_plane(received)) == number  # the luma alone is enough


def test_a_frame_without_a_code_reads_as_none() -> None:
    assert read_number(render_test_pattern(7, 640, 352)) is None
    assert read_number(np.full((352, 640, 3), 128, np.uint8)) is None


def test_numbers_past_the_codes_range_come_back_whole_with_unwrap() -> None:
    for number in (5, MODULUS - 1, MODULUS, MODULUS + 3, 5 * MODULUS + 17):
        code = read_number(stamped_test_pattern(number, 640, 352))
        assert code == number % MODULUS
        # Read a little after it was sent, or (a late frame) well after.
        assert unwrap(code, near=number + 3) == number
        assert unwrap(code, near=number + MODULUS // 3) == number


def test_a_frame_too_small_for_the_code_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        Timecode(64, 48)


def test_the_stamped_pattern_knows_when_each_frame_was_taken() -> None:
    pattern = StampedPattern(640, 352)
    frames = iter(pattern)
    before = time.monotonic()
    images = [next(frames) for _ in range(3)]
    for number, image in enumerate(images):
        received = _through_a_codec(image, 640, 352)
        code = pattern.read(received)
        assert code == number
        entry = pattern.sent_at(code)
        assert entry is not None
        assert entry[0] == number and before <= entry[1] <= time.monotonic()


def _gray(level: int) -> np.ndarray:
    return np.full((48, 64, 3), level, np.uint8)


async def _frames(source: PushSource, pool: concurrent.futures.Executor, count: int) -> None:
    track = source.open_track(width=64, height=48, fps=100, executor=pool)
    try:
        for _ in range(count):
            await track.recv()
    finally:
        track.stop()


def test_a_push_source_says_which_frame_its_track_took_and_when(
    pool: concurrent.futures.Executor,
) -> None:
    taken: list[tuple[int, float]] = []
    source = PushSource(on_taken=lambda number: taken.append((number, time.monotonic())))
    assert [source.send(_gray(level)) for level in (10, 20, 30)] == [0, 1, 2]
    pushed = time.monotonic()
    # Frames 0 and 1 were replaced before the track came: only 2 is taken, and its repeats
    # (the track sends the last frame again when nothing new comes) are not reported again.
    asyncio.run(_frames(source, pool, 3))
    assert [number for number, _ in taken] == [2]
    assert taken[0][1] >= pushed
    assert source.send(_gray(40)) == 3
    asyncio.run(_frames(source, pool, 2))
    assert [number for number, _ in taken] == [2, 3]
    assert source.frames_dropped == 2


def test_a_failing_on_taken_is_logged_and_the_frame_still_goes_out(
    pool: concurrent.futures.Executor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(number: int) -> None:
        raise RuntimeError("instrumentation bug")

    source = PushSource(on_taken=broken)
    source.send(_gray(90))
    with caplog.at_level(logging.ERROR):
        asyncio.run(_frames(source, pool, 2))
    assert source.frames_sent == 2
    assert "on_taken" in caplog.text and "instrumentation bug" in caplog.text
