"""The track's clock: frames go out when they are there, at the model's fps on average, with
increasing pts on the 90 kHz clock."""

from __future__ import annotations

import concurrent.futures
import fractions
import itertools
import time

import av
import pytest
from _media_helpers import pts_steps, run, take

from decart_sync.media import test_pattern
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
