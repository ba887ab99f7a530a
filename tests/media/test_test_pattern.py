"""The synthetic test pattern: deterministic, moving, counting, cheap to make."""

from __future__ import annotations

import concurrent.futures

import av
import numpy as np
import pytest
from _source_helpers import run, take

from decart_sync.errors import InvalidInputError
from decart_sync.media import render_test_pattern, test_pattern


def test_a_frame_is_a_pure_function_of_its_arguments() -> None:
    first = render_test_pattern(17, 320, 176, seed=3)
    again = render_test_pattern(17, 320, 176, seed=3)
    assert first.shape == (176, 320, 3)
    assert first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, render_test_pattern(17, 320, 176, seed=4))


def test_each_call_returns_a_new_array() -> None:
    first = render_test_pattern(5, 64, 64)
    first[...] = 0
    assert render_test_pattern(5, 64, 64).any()


def test_the_counter_and_the_shapes_change_between_frames() -> None:
    width, height = 640, 352
    a = render_test_pattern(41, width, height)
    b = render_test_pattern(42, width, height)
    changed = (a != b).any(axis=2)
    # The counter sits in the top-left corner, and its last digit changes.
    corner = changed[: height // 3, : width * 9 // 10]
    assert corner.sum() > 100
    # The shapes move too: something changes outside the counter's corner.
    changed[: height // 3 + height // 40, : width * 9 // 10 + width // 40] = False
    assert changed.sum() > 100


@pytest.mark.parametrize("size", [(16, 16), (17, 301), (1280, 704), (1920, 1080)])
def test_any_size_renders(size: tuple[int, int]) -> None:
    width, height = size
    image = render_test_pattern(123456789, width, height)
    assert image.shape == (height, width, 3)


@pytest.mark.parametrize(
    "args", [(-1, 64, 64), (0, 8, 64), (0, 64, 0), (1.5, 64, 64), (True, 64, 64)]
)
def test_bad_arguments_are_refused(args: tuple[object, object, object]) -> None:
    with pytest.raises(InvalidInputError, match="test pattern"):
        render_test_pattern(*args)  # type: ignore[arg-type]


def _as_track_frame(image: np.ndarray) -> np.ndarray:
    converted = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    return converted.to_ndarray()


def test_the_source_sends_the_pattern_frames_in_order(
    executor: concurrent.futures.Executor,
) -> None:
    source = test_pattern(width=96, height=64, fps=30, seed=7)

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=96, height=64, fps=30, executor=executor), 4)

    frames = run(receive())
    for n, frame in enumerate(frames):
        assert np.array_equal(
            frame.to_ndarray(), _as_track_frame(render_test_pattern(n, 96, 64, 7))
        )


def test_a_slower_pattern_runs_in_real_time(executor: concurrent.futures.Executor) -> None:
    source = test_pattern(width=64, height=48, fps=15)

    async def receive() -> list[av.VideoFrame]:
        return await take(source.open_track(width=64, height=48, fps=60, executor=executor), 8)

    frames = run(receive())
    expected = [_as_track_frame(render_test_pattern(n, 64, 48)) for n in (0, 0, 0, 0, 1, 1, 1, 1)]
    for frame, want in zip(frames, expected, strict=True):
        assert np.array_equal(frame.to_ndarray(), want)
