"""The frame hub: how user threads read the transformed stream the loop thread publishes.

Real ``av.VideoFrame``s built from known pixels, real threads. Nothing sleeps to let things settle:
tests wait for a condition (a reader blocked, a thread finished) with a deadline.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial
from typing import Any

import av
import numpy as np
import pytest

from decart_sync.errors import (
    DecartTimeoutError,
    InvalidInputError,
    LoopThreadError,
    SessionClosedError,
    WebRTCError,
)
from decart_sync.realtime import _frames as frames_module
from decart_sync.realtime._frames import FrameConsumer, FrameHub, FrameInfo
from decart_sync.testing import wait_until

pytestmark = pytest.mark.timeout(30)

DEADLINE = 5.0  # seconds any wait in these tests may take before it counts as hung
H, W = 16, 24


def rgb_pattern(seed: int) -> np.ndarray[Any, Any]:
    """An HxWx3 RGB image whose three channels differ, so BGR and RGB cannot be confused."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


# Every frame make_frame() built during the current test, so live_shared_frames() can tell
# them from frames other test modules leave behind.
_made: list[av.VideoFrame] = []


def make_frame(seed: int = 0, pts: int | None = None) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb_pattern(seed), format="rgb24")
    _made.append(frame)
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, 90_000)
    return frame


def live_shared_frames() -> int:
    """How many frames made by this test anything still holds (the hub, consumers, the test).
    Frames that other test modules' sessions may still hold are not counted."""
    gc.collect()
    ours = {id(frame) for frame in _made}  # alive (held by _made), so their ids are unique
    # type() rather than isinstance(): isinstance would wake lazy proxies (Django settings).
    shared = [o for o in gc.get_objects() if type(o) is frames_module._SharedFrame]
    return sum(id(o.frame) in ours for o in shared)


@pytest.fixture(autouse=True)
def _forget_made_frames() -> Iterator[None]:
    yield
    _made.clear()


def blocked(consumer: FrameConsumer) -> bool:
    """The consumer's reader is parked waiting for a frame."""
    return consumer._inbox.waiting


class InThread:
    """Run ``fn`` in a thread; keep what it returned or raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._fn = fn
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as error:
            self.error = error

    def join(self) -> InThread:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "reader thread still blocked"
        return self


# -- pixels and formats -------------------------------------------------------------------------


def test_each_format_gives_the_right_pixels() -> None:
    hub = FrameHub()
    bgr, rgb, raw = (hub.consumer(format=f) for f in ("bgr", "rgb", "av"))
    frame = make_frame(seed=1)
    hub.publish(frame)

    expected = rgb_pattern(1)
    got_bgr = bgr.get(timeout=DEADLINE)
    assert got_bgr.shape == (H, W, 3) and got_bgr.dtype == np.uint8
    assert np.array_equal(got_bgr, expected[:, :, ::-1])
    assert np.array_equal(rgb.get(timeout=DEADLINE), expected)
    assert raw.get(timeout=DEADLINE) is frame


def test_decoder_style_yuv_frames_convert_to_close_pixels() -> None:
    # What aiortc's decoder hands over: yuv420p. Chroma subsampling loses detail, so compare a
    # smooth image with a tolerance.
    y, x = np.mgrid[0:64, 0:96]
    smooth = np.stack([x * 2, y * 3, 255 - x * 2], axis=-1).astype(np.uint8)
    yuv = av.VideoFrame.from_ndarray(smooth, format="rgb24").reformat(format="yuv420p")
    hub = FrameHub()
    bgr, rgb = hub.consumer(format="bgr"), hub.consumer(format="rgb")
    hub.publish(yuv)

    got_rgb = rgb.get(timeout=DEADLINE).astype(int)
    got_bgr = bgr.get(timeout=DEADLINE).astype(int)
    assert np.abs(got_rgb - smooth).mean() < 4
    assert np.abs(got_bgr[:, :, ::-1] - smooth).mean() < 4


def test_arrays_are_read_only_and_copies_are_not() -> None:
    hub = FrameHub()
    consumer = hub.consumer()
    hub.publish(make_frame())
    frame = consumer.get(timeout=DEADLINE)

    assert not frame.flags.writeable
    with pytest.raises(ValueError):
        frame[0, 0, 0] = 1
    with pytest.raises(ValueError):
        frame.flags.writeable = True  # cannot be switched back on: the buffer is read-only
    mine = frame.copy()
    mine[0, 0, 0] = 1
    assert mine.flags.writeable


def test_each_format_is_converted_once_in_a_reader_thread_and_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversions: list[tuple[str, int]] = []
    convert = frames_module._readonly_pixels

    def counting(frame: av.VideoFrame, pixel_format: str) -> np.ndarray[Any, Any]:
        conversions.append((pixel_format, threading.get_ident()))
        return convert(frame, pixel_format)

    monkeypatch.setattr(frames_module, "_readonly_pixels", counting)
    hub = FrameHub()
    bgr_consumers = [hub.consumer(format="bgr") for _ in range(4)]
    rgb_consumers = [hub.consumer(format="rgb") for _ in range(2)]
    hub.publish(make_frame())
    assert conversions == []  # publishing converts nothing

    readers = [InThread(partial(c.get, timeout=DEADLINE)) for c in bgr_consumers]
    readers += [InThread(partial(c.get, timeout=DEADLINE)) for c in rgb_consumers]
    results = [reader.join().result for reader in readers]

    assert sorted(fmt for fmt, _ in conversions) == ["bgr24", "rgb24"]
    reader_threads = {reader.thread.ident for reader in readers}
    assert {ident for _, ident in conversions} <= reader_threads
    bgr_arrays, rgb_arrays = results[:4], results[4:]
    assert all(array is bgr_arrays[0] for array in bgr_arrays)
    assert all(array is rgb_arrays[0] for array in rgb_arrays)
    assert hub.latest("bgr") is bgr_arrays[0]
    assert len(conversions) == 2


def test_latest_returns_the_newest_frame_without_waiting() -> None:
    hub = FrameHub()
    assert hub.latest() is None
    hub.publish(make_frame(seed=1))
    hub.publish(make_frame(seed=2))
    newest = hub.latest("rgb")
    assert newest is not None
    assert np.array_equal(newest, rgb_pattern(2))
    hub.close()
    assert hub.latest() is None  # a closed hub lets go of its frame


# -- policies -----------------------------------------------------------------------------------


def test_latest_policy_keeps_only_the_newest_and_counts_the_rest() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="latest")
    for seed in range(5):
        hub.publish(make_frame(seed))

    info = consumer.get_info(timeout=DEADLINE)
    assert info.seq == 4
    assert np.array_equal(info.frame, rgb_pattern(4)[:, :, ::-1])
    assert (consumer.delivered, consumer.dropped) == (1, 4)
    with pytest.raises(DecartTimeoutError):
        consumer.get(timeout=0)  # nothing older is left behind


def test_fifo_policy_keeps_order_and_evicts_the_oldest_when_full() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo", maxsize=3)
    for seed in range(5):
        hub.publish(make_frame(seed))

    seqs = [consumer.get_info(timeout=0).seq for _ in range(3)]
    assert seqs == [2, 3, 4]
    assert (consumer.delivered, consumer.dropped) == (3, 2)
    with pytest.raises(DecartTimeoutError):
        consumer.get(timeout=0)


def test_fresh_skips_frames_published_before_the_call() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo", maxsize=4)
    hub.publish(make_frame(0))
    with pytest.raises(DecartTimeoutError):
        consumer.get(timeout=0.01, fresh=True)  # frame 0 is older than the call
    assert consumer.dropped == 1

    hub.publish(make_frame(1))
    reader = InThread(lambda: consumer.get_info(timeout=DEADLINE, fresh=True))
    wait_until(lambda: blocked(consumer), DEADLINE, "the reader waits for a fresh frame")
    hub.publish(make_frame(2))
    info = reader.join().result

    assert info.seq == 2
    assert (consumer.delivered, consumer.dropped) == (1, 2)


def test_a_never_reading_consumer_holds_one_frame_while_a_fast_one_gets_all() -> None:
    hub = FrameHub()
    idle = hub.consumer()
    fast = hub.consumer()
    total = 200
    got: list[int] = []

    def read_fast() -> None:
        for info in fast.infos():
            got.append(info.seq)

    reader = InThread(read_fast)
    for seed in range(total):
        hub.publish(make_frame(seed % 4))
        # Lockstep, so "fast" means fast: the next frame comes once this one was taken.
        wait_until(
            lambda: fast.delivered == len(got) == hub.published, DEADLINE, "the fast reader took it"
        )
    hub.close()
    reader.join()

    assert reader.error is None
    assert got == list(range(total))
    assert (fast.delivered, fast.dropped) == (total, 0)
    assert (idle.delivered, idle.dropped) == (0, total - 1)
    assert live_shared_frames() == 1  # the newest, held by idle; nothing else accumulated
    assert idle.get_info(timeout=0).seq == total - 1  # the one it holds is the newest


def test_many_readers_race_one_publisher_and_every_frame_is_accounted_for() -> None:
    hub = FrameHub()
    consumers = [
        hub.consumer(policy="latest"),
        hub.consumer(policy="latest", format="rgb"),
        hub.consumer(policy="fifo", maxsize=2),
        hub.consumer(policy="fifo", maxsize=64, format="av"),
    ]
    seqs: list[list[int]] = [[] for _ in consumers]

    def read(index: int) -> None:
        for info in consumers[index].infos():
            seqs[index].append(info.seq)

    readers = [InThread(partial(read, i)) for i in range(len(consumers))]
    total = 500
    for seed in range(total):
        hub.publish(make_frame(seed % 4))
    hub.close()
    for reader in readers:
        assert reader.join().error is None

    for consumer, seen in zip(consumers, seqs, strict=True):
        assert seen == sorted(set(seen))  # in order, no frame twice
        assert seen[-1] == total - 1  # a clean close lets the reader drain the newest
        assert consumer.delivered == len(seen)
        assert consumer.delivered + consumer.dropped == total


# -- waiting, timeouts, misuse ------------------------------------------------------------------


def test_timeouts_raise_for_get_and_return_false_for_read() -> None:
    hub = FrameHub()
    consumer = hub.consumer()
    started = time.monotonic()
    with pytest.raises(DecartTimeoutError, match="not started"):
        consumer.get(timeout=0.05)
    assert time.monotonic() - started >= 0.05
    with pytest.raises(TimeoutError):  # also the builtin, for generic handlers
        consumer.get_info(timeout=0)
    assert consumer.read(timeout=0.01) == (False, None)

    hub.publish(make_frame(3))
    ok, frame = consumer.read(timeout=0)
    assert ok and frame is not None
    assert np.array_equal(frame, rgb_pattern(3)[:, :, ::-1])


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1", True])
def test_bad_timeouts_are_rejected(timeout: Any) -> None:
    consumer = FrameHub().consumer()
    with pytest.raises(InvalidInputError, match="timeout"):
        consumer.get(timeout=timeout)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "bgra"},
        {"policy": "lifo"},
        {"policy": "fifo", "maxsize": 0},
        {"policy": "fifo", "maxsize": 2.5},
        {"maxsize": True},
    ],
)
def test_bad_consumer_arguments_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        FrameHub().consumer(**kwargs)


def test_bad_latest_format_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="format"):
        FrameHub().latest("gray")  # type: ignore[arg-type]


def test_a_second_thread_reading_the_same_consumer_gets_a_clear_error() -> None:
    hub = FrameHub()
    consumer = hub.consumer()
    first = InThread(lambda: consumer.get_info(timeout=DEADLINE))
    wait_until(lambda: blocked(consumer), DEADLINE, "the first reader waits")

    with pytest.raises(InvalidInputError, match="another thread"):
        consumer.get(timeout=0)
    with pytest.raises(InvalidInputError, match="another thread"):
        consumer.read(timeout=0)
    with pytest.raises(InvalidInputError, match="another thread"):
        next(consumer)

    hub.publish(make_frame())
    assert first.join().result.seq == 0  # the first reader was not disturbed
    hub.publish(make_frame())
    assert consumer.get(timeout=0) is not None  # free again once the first one returned


def test_blocking_guard_runs_before_a_blocking_read() -> None:
    def refuse() -> None:
        raise LoopThreadError("blocking read on the loop thread")

    hub = FrameHub(blocking_guard=refuse)
    consumer = hub.consumer()
    with pytest.raises(LoopThreadError):
        consumer.get(timeout=1)
    with pytest.raises(LoopThreadError):
        next(consumer)
    with pytest.raises(DecartTimeoutError):
        consumer.get(timeout=0)  # a poll never blocks, so it is allowed


# -- endings ------------------------------------------------------------------------------------


def test_a_clean_close_lets_readers_drain_then_ends_iteration() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo", maxsize=4, format="rgb")
    hub.publish(make_frame(1))
    hub.publish(make_frame(2))
    hub.close()
    hub.close()  # idempotent

    drained = list(consumer)
    assert [f.tobytes() for f in drained] == [rgb_pattern(s).tobytes() for s in (1, 2)]
    with pytest.raises(SessionClosedError, match="ended"):
        consumer.get(timeout=DEADLINE)
    assert consumer.read(timeout=DEADLINE) == (False, None)
    assert list(consumer.infos()) == []
    assert hub.closed and hub.error is None


def test_a_close_with_an_error_raises_it_and_delivers_nothing_more() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo", maxsize=4)
    hub.publish(make_frame(1))
    boom = WebRTCError("reconnect gave up after 5 attempts")
    hub.close(boom)
    hub.close(RuntimeError("later"))  # the first close wins
    assert live_shared_frames() == 0  # what the consumer held was let go at once

    with pytest.raises(WebRTCError) as raised:
        next(consumer)
    assert raised.value is boom
    with pytest.raises(WebRTCError):
        consumer.get(timeout=DEADLINE)
    with pytest.raises(WebRTCError):
        next(consumer.infos())
    assert consumer.read(timeout=DEADLINE) == (False, None)
    assert hub.error is boom


@pytest.mark.parametrize("error", [None, WebRTCError("lost")])
def test_closing_the_hub_wakes_a_reader_blocked_in_another_thread(
    error: BaseException | None,
) -> None:
    hub = FrameHub()
    consumer = hub.consumer()
    reader = InThread(lambda: list(consumer))
    wait_until(lambda: blocked(consumer), DEADLINE, "the reader waits")

    hub.close(error)
    reader.join()
    if error is None:
        assert (reader.result, reader.error) == ([], None)
    else:
        assert reader.error is error


def test_consumers_made_after_close_see_the_end_at_once() -> None:
    hub = FrameHub()
    hub.close()
    started = time.monotonic()
    assert list(hub.consumer()) == []
    assert time.monotonic() - started < DEADLINE

    failed = FrameHub()
    failed.close(WebRTCError("lost"))
    with pytest.raises(WebRTCError):
        failed.consumer().get()


def test_publishing_after_close_is_ignored() -> None:
    hub = FrameHub()
    hub.publish(make_frame())
    hub.close()
    hub.publish(make_frame())
    assert hub.published == 1
    assert hub.latest() is None


def test_closing_a_consumer_unsubscribes_it_and_wakes_its_reader() -> None:
    hub = FrameHub()
    other = hub.consumer()
    consumer = hub.consumer()
    assert hub.active_consumers == 2
    reader = InThread(lambda: list(consumer.infos()))
    wait_until(lambda: blocked(consumer), DEADLINE, "the reader waits")

    consumer.close()
    consumer.close()  # idempotent
    assert (reader.join().result, reader.error) == ([], None)
    assert hub.active_consumers == 1
    hub.publish(make_frame())
    assert consumer.delivered + consumer.dropped == 0  # publish no longer touches it
    with pytest.raises(SessionClosedError, match="consumer was closed"):
        consumer.get(timeout=0)
    assert other.get(timeout=0) is not None  # the others carry on
    assert not hub.closed


def test_closing_a_consumer_lets_go_of_the_frames_it_held() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo", maxsize=4)
    hub.publish(make_frame(0))
    hub.publish(make_frame(1))
    assert live_shared_frames() == 2  # both in the consumer; the newest also in the hub
    consumer.close()
    assert live_shared_frames() == 1  # only the hub's newest


def test_a_consumer_is_a_context_manager_that_closes_itself() -> None:
    hub = FrameHub()
    with hub.consumer() as consumer:
        hub.publish(make_frame())
        assert consumer.get(timeout=DEADLINE) is not None
    assert consumer.closed
    assert hub.active_consumers == 0


def test_a_forgotten_consumer_stops_receiving() -> None:
    hub = FrameHub()
    for _ in range(3):
        consumer = hub.consumer()
        hub.publish(make_frame())
        for _frame in consumer:  # the user breaks out without closing
            break
        del consumer
    gc.collect()
    assert hub.active_consumers == 0
    hub.publish(make_frame())
    assert hub._inboxes == ()  # publish pruned the forgotten inboxes


def test_iterators_survive_a_reconnect() -> None:
    # A reconnect is invisible to the hub: the session keeps publishing into it.
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo")
    reader = InThread(lambda: [info.seq for info in consumer.infos()])
    hub.publish(make_frame(0))
    wait_until(lambda: consumer.delivered == 1, DEADLINE, "the first frame is read")
    # ... the connection drops and comes back; frames resume from the new connection ...
    hub.publish(make_frame(1, pts=0))
    hub.close()
    assert reader.join().result == [0, 1]


# -- frame info ---------------------------------------------------------------------------------


def test_frame_info_carries_sequence_presentation_and_receive_times() -> None:
    hub = FrameHub()
    consumer = hub.consumer(policy="fifo")
    before = time.monotonic()
    hub.publish(make_frame(0, pts=90_000))
    hub.publish(make_frame(1, pts=135_000))
    hub.publish(make_frame(2))  # no timestamp
    after = time.monotonic()

    infos = [consumer.get_info(timeout=0) for _ in range(3)]
    assert [i.seq for i in infos] == [0, 1, 2]
    assert [i.pts for i in infos] == [1.0, 1.5, None]
    assert all(before <= i.received_at <= after for i in infos)
    assert infos[0].received_at <= infos[1].received_at <= infos[2].received_at
    assert isinstance(infos[0], FrameInfo)
    assert np.array_equal(infos[1].frame, rgb_pattern(1)[:, :, ::-1])
    assert "seq=1" in repr(infos[1])


# -- Ctrl-C -------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, threading, time
    from decart_sync.errors import DecartTimeoutError
    from decart_sync.realtime._frames import FrameHub

    hub = FrameHub()
    consumer = hub.consumer()

    def announce():
        while not consumer._inbox.waiting:
            time.sleep(0.001)
        print("waiting", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        if sys.argv[1] == "get":
            consumer.get()
        else:
            for frame in consumer:
                pass
    except KeyboardInterrupt:
        try:
            consumer.get(timeout=0)
        except DecartTimeoutError:
            print("KeyboardInterrupt; consumer still usable", flush=True)
            sys.exit(42)
    sys.exit(1)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["get", "iterate"])
def test_ctrl_c_interrupts_a_blocked_read_promptly(how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=DEADLINE)
        elapsed = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 42, err
    assert "KeyboardInterrupt; consumer still usable" in out
    # The child's get() has no timeout: only the interrupt can have ended it (communicate()
    # above gives up after DEADLINE), however busy the machine is.
    assert elapsed < DEADLINE
