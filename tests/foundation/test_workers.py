"""The media worker pool: a standard executor whose stuck workers never hold up exit."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from decart_sync._workers import WorkerPool


def test_results_exceptions_and_thread_names() -> None:
    pool = WorkerPool(2, "decart-media-test")
    try:
        assert pool.submit(lambda a, b: a * b, 6, 7).result(5) == 42
        with pytest.raises(KeyError):
            pool.submit({}.__getitem__, "missing").result(5)
        name = pool.submit(lambda: threading.current_thread().name).result(5)
        assert name.startswith("decart-media-test-")
        assert pool.submit(lambda: threading.current_thread().daemon).result(5)
    finally:
        pool.shutdown()


def test_workers_are_reused_and_bounded() -> None:
    pool = WorkerPool(2, "decart-media-bound")
    gate = threading.Event()
    try:
        futures = [pool.submit(gate.wait, 5) for _ in range(6)]
        names = {t.name for t in threading.enumerate() if t.name.startswith("decart-media-bound")}
        assert len(names) <= 2
        gate.set()
        assert all(f.result(5) for f in futures)
        for _ in range(20):
            pool.submit(lambda: None).result(5)
        names = {t.name for t in threading.enumerate() if t.name.startswith("decart-media-bound")}
        assert len(names) <= 2
    finally:
        pool.shutdown()


def test_shutdown_cancels_queued_work_and_refuses_more() -> None:
    pool = WorkerPool(1, "decart-media-cancel")
    gate = threading.Event()
    running = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(5) is True
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def test_shutdown_does_not_wait_forever_for_a_stuck_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("decart_sync._workers.JOIN_TIMEOUT", 0.2)
    pool = WorkerPool(1, "decart-media-stuck")
    never = threading.Event()
    future = pool.submit(never.wait)
    pool.shutdown(wait=True)  # returns after the bound although the worker is stuck
    assert not future.done()
    never.set()
    assert future.result(5) is True
    assert isinstance(future, concurrent.futures.Future)
