"""User callbacks: on named pool threads, in order per session, isolated from each other."""

from __future__ import annotations

import logging
import threading

import pytest

from decart_sync._dispatch import CallbackDispatcher


@pytest.fixture
def dispatcher() -> CallbackDispatcher:
    d = CallbackDispatcher(workers=2)
    yield d
    d.shutdown()


def test_callbacks_run_on_named_pool_threads_in_order(dispatcher: CallbackDispatcher) -> None:
    channel = dispatcher.channel("session-a")
    seen: list[tuple[int, str]] = []
    for i in range(200):
        channel.post(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert channel.wait_idle(5)
    assert [i for i, _ in seen] == list(range(200))
    assert all(name.startswith("decart-callback-") for _, name in seen)


def test_a_raising_callback_is_logged_and_the_next_still_runs(
    dispatcher: CallbackDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="decart_sync")
    channel = dispatcher.channel("session-b")
    after = threading.Event()

    def broken() -> None:
        raise ZeroDivisionError("user bug")

    channel.post(broken)
    channel.post(after.set)
    assert after.wait(5)
    assert channel.wait_idle(5)
    assert "broken" in caplog.text
    assert "ZeroDivisionError: user bug" in caplog.text  # the traceback is logged


def test_a_slow_callback_does_not_block_posting_or_other_sessions(
    dispatcher: CallbackDispatcher,
) -> None:
    slow = dispatcher.channel("slow")
    fast = dispatcher.channel("fast")
    gate = threading.Event()
    fast_done = threading.Event()
    slow.post(gate.wait, 10)
    for _ in range(100):
        slow.post(lambda: None)  # returns at once although the channel is stuck
    fast.post(fast_done.set)
    assert fast_done.wait(5)
    assert not slow.wait_idle(0.05)
    gate.set()
    assert slow.wait_idle(5)


def test_shutdown_joins_workers_and_drops_later_posts() -> None:
    d = CallbackDispatcher(workers=2, name="decart-callback-shut")
    channel = d.channel("x")
    ran = threading.Event()
    channel.post(ran.set)
    assert ran.wait(5)
    d.shutdown()
    assert not any(t.name.startswith("decart-callback-shut") for t in threading.enumerate())
    channel.post(lambda: None)
    assert channel.wait_idle(1)


def test_shutdown_from_a_callback_does_not_deadlock() -> None:
    d = CallbackDispatcher(workers=1, name="decart-callback-self")
    channel = d.channel("x")
    done = threading.Event()
    channel.post(lambda: (d.shutdown(), done.set()))
    assert done.wait(5)
