"""The track's clock: frames go out when they are there, at the model's fps on average, with
increasing pts on the 90 kHz clock; each source says how it is paced."""

from __future__ import annotations

import concurrent.futures
import fractions
import itertools
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest
from _source_helpers import pts_steps, run, take

from decart_sync.errors import InvalidInputError
from decart_sync.media import CaptureSource, IterableSource, Pacing, PushSource, test_pattern
from decart_sync.media.sources._track import Pacer


def test_arrivals_go_out_at_once_capped_at_the_rate_and_stamped_with_their_time() -> None:
    pacer = Pacer(10)
    assert (pacer.not_before(), pacer.repeat_at()) == (None, None)  # the first frame: any time
    assert pacer.stamp(5.0) == 0
    assert pacer.not_before() == pytest.approx(5.075)  # an interval on, less the tolerance
    assert pacer.repeat_at() == pytest.approx(5.2)  # two intervals without news: repeat
    assert pacer.stamp(5.137) == 12330  # the time it was taken, not a grid slot
    # Taken a hair early by the clock (rounding), the pts still moves a whole step on.
    assert pacer.stamp(5.2369) == 12330 + 9000


def test_a_producer_faster_than_the_model_is_held_to_its_rate() -> None:
    pacer = Pacer(10)
    now, taken = 0.0, []
    for _ in range(101):  # frames arrive every millisecond; each is taken as soon as allowed
        now = max(now + 0.001, pacer.not_before() or 0.0)
        pacer.stamp(now)
        taken.append(now)
    assert taken[100] - taken[0] == pytest.approx(10.0, abs=0.03)  # 10 fps, on average
    assert min(b - a for a, b in itertools.pairwise(taken)) >= 0.075 - 1e-9


def test_a_producer_at_the_models_rate_taken_late_now_and_then_never_falls_behind() -> None:
    """Frames 0.4 ms slower than the model's interval, each taken up to 2 ms late by a busy
    loop: no frame waits for the cap beyond that lateness (a cap counted from each actual take
    would make the wait grow by the lateness every frame until a frame was dropped)."""
    pacer = Pacer(30)
    waits = []
    for k in range(300):
        arrived = k * (1 / 30 + 0.0004)
        late = 0.002 if k % 2 else 0.0015
        taken = max(arrived, pacer.not_before() or 0.0) + late
        pacer.stamp(taken)
        waits.append(taken - arrived)
    assert max(waits) <= 0.002 + 1e-9


def test_a_track_is_paced_and_stamped(executor: concurrent.futures.Executor) -> None:
    source = test_pattern(width=320, height=176, fps=50)
    count, fps = 26, 50

    async def receive() -> tuple[list[av.VideoFrame], float]:
        track = source.open_track(width=160, height=96, fps=fps, executor=executor)
        started = time.monotonic()
        frames = await take(track, count)
        return frames, time.monotonic() - started

    frames, elapsed = run(receive())
    assert [(f.width, f.height, f.format.name) for f in frames] == [(160, 96, "yuv420p")] * count
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    steps = pts_steps(frames)
    assert all(step >= 1800 for step in steps), steps  # never faster than 50 fps
    # Stamped with when each frame went out: the stamps span no more time than it took, give
    # or take the pacer's tolerance (a busy machine sends some late, which the stamps show).
    nominal = (count - 1) / fps
    assert nominal * 0.9 <= sum(steps) / 90_000 <= elapsed + 1 / fps
    assert source.frames_sent == count


def test_each_source_says_how_its_track_paces_it() -> None:
    assert IterableSource([]).pacing is Pacing.READ_AHEAD
    assert CaptureSource(FakeReader()).pacing is Pacing.READ_AHEAD
    assert test_pattern().pacing is Pacing.WHEN_DUE
    assert PushSource().pacing is Pacing.ON_ARRIVAL


def test_a_source_read_per_frame_cannot_wait_for_arrivals() -> None:
    with pytest.raises(InvalidInputError, match="READ_AHEAD or WHEN_DUE"):
        IterableSource([], pacing=Pacing.ON_ARRIVAL)


def test_an_iterable_paced_when_due_is_read_only_once_its_frame_is_due(
    executor: concurrent.futures.Executor,
) -> None:
    fps = 4
    read_at: list[float] = []

    def frames() -> Iterator[np.ndarray]:
        while True:
            read_at.append(time.monotonic())
            yield np.zeros((48, 64, 3), np.uint8)

    source = IterableSource(frames(), pacing=Pacing.WHEN_DUE)

    async def receive() -> None:
        await take(source.open_track(width=64, height=48, fps=fps, executor=executor), 2)

    run(receive())
    source.close()
    # The second frame is read no earlier than the rate allows after the first was sent (which
    # was after the first read); read ahead, it would have been read at once.
    earliest = (1 - Pacer.TOLERANCE) / fps
    assert read_at[1] - read_at[0] >= earliest - 0.005


class FakeReader:
    def read(self) -> tuple[bool, None]:
        return False, None
