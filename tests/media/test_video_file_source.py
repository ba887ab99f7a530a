"""video_file(): a file played in real time (or frame by frame), looping or ending, and closed."""

from __future__ import annotations

import concurrent.futures
import pathlib
import time

import av
import psutil
import pytest
from _source_helpers import (
    assert_close_levels,
    level_of,
    pts_steps,
    run,
    take,
    take_all,
    write_video,
)

from decart_sync.errors import DecartSDKError
from decart_sync.media import video_file

LEVELS = [10 + 20 * i for i in range(10)]


@pytest.fixture
def clip(tmp_path: pathlib.Path) -> pathlib.Path:
    """Ten frames at 25 fps (0.4 s), frame i a grey of LEVELS[i]."""
    return write_video(tmp_path / "clip.mp4", LEVELS, fps=25)


def _open_handles(path: pathlib.Path) -> int:
    return sum(1 for f in psutil.Process().open_files() if pathlib.Path(f.path) == path)


def test_frame_by_frame_playback_ends_at_the_end(
    clip: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    errors: list[DecartSDKError] = []
    source = video_file(clip, realtime=False)

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(
            width=32, height=24, fps=200, executor=executor, on_error=errors.append
        )
        return await take_all(track)

    frames = run(receive())
    assert_close_levels([level_of(f) for f in frames], LEVELS)
    assert {(f.width, f.height, f.format.name) for f in frames} == {(32, 24, "yuv420p")}
    assert source.ended
    assert errors == []
    source.close()


def test_real_time_playback_keeps_the_files_speed(
    clip: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    source = video_file(clip)  # 25 fps file, sent at 50 fps: every file frame twice

    async def receive() -> tuple[list[av.VideoFrame], float]:
        track = source.open_track(width=64, height=48, fps=50, executor=executor)
        started = time.monotonic()
        frames = await take_all(track)
        return frames, time.monotonic() - started

    frames, elapsed = run(receive())
    assert_close_levels([level_of(f) for f in frames], [lv for lv in LEVELS for _ in (0, 1)])
    assert elapsed >= 0.3  # the file lasts 0.4 s: played at its speed, never faster
    assert min(pts_steps(frames)) == 1800
    source.close()


def test_a_faster_file_skips_frames_in_real_time(
    tmp_path: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    path = write_video(tmp_path / "fast.mp4", LEVELS, fps=100)

    async def receive() -> list[av.VideoFrame]:
        track = video_file(path).open_track(width=64, height=48, fps=50, executor=executor)
        return await take_all(track)

    assert_close_levels([level_of(f) for f in run(receive())], LEVELS[::2])


def test_a_looping_file_starts_again(
    clip: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    source = video_file(clip, loop=True, realtime=False)

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(width=64, height=48, fps=200, executor=executor)
        return await take(track, 25)

    frames = run(receive())
    assert_close_levels([level_of(f) for f in frames], (LEVELS * 3)[:25])
    assert not source.ended
    source.close()


def test_a_looping_file_in_real_time_wraps_on_time(
    clip: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    source = video_file(clip, loop=True)

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(width=64, height=48, fps=25, executor=executor)
        return await take(track, 13)

    assert_close_levels([level_of(f) for f in run(receive())], (LEVELS * 2)[:13])
    source.close()


def test_a_reconnect_continues_where_the_file_was(
    clip: pathlib.Path, executor: concurrent.futures.Executor
) -> None:
    source = video_file(clip, realtime=False)

    async def receive() -> list[av.VideoFrame]:
        first = await take(source.open_track(width=64, height=48, fps=200, executor=executor), 4)
        second = source.open_track(width=64, height=48, fps=200, executor=executor)
        return first + await take_all(second)

    assert_close_levels([level_of(f) for f in run(receive())], LEVELS)
    source.close()


def test_close_releases_the_file(clip: pathlib.Path, executor: concurrent.futures.Executor) -> None:
    source = video_file(clip)
    assert _open_handles(clip) == 1

    async def receive() -> None:
        await take(source.open_track(width=64, height=48, fps=200, executor=executor), 2)

    run(receive())
    source.close()
    assert _open_handles(clip) == 0
    source.close()  # idempotent
