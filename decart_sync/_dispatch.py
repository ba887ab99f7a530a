"""Delivery of user callbacks: on a small pool of named threads, never on the loop thread.

Each session posts its events to its own :class:`EventChannel`. A channel delivers its events one
at a time, in the order they were posted, on whichever pool thread is free; different sessions'
channels run in parallel. A callback that raises is logged with its traceback and the next event
is delivered as usual. Posting is O(1) and never waits for a callback, so a slow callback cannot
delay the loop.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from decart_sync._redact import get_logger

_log = get_logger(__name__)

_Job = Callable[[], None]


class CallbackDispatcher:
    """A small pool of named worker threads, started on first use and joined on shutdown."""

    def __init__(self, workers: int = 2, name: str = "decart-callback") -> None:
        self._max_workers = workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def channel(self, label: str) -> EventChannel:
        """A new ordered channel (one per session)."""
        return EventChannel(self, label)

    def _submit(self, job: _Job) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._idle == 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle = max(0, self._idle - 1)
        self._jobs.put(job)
        return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()
            with self._lock:
                self._idle += 1

    def shutdown(self, timeout: float = 5.0) -> None:
        """Let queued callbacks finish, then end the workers (waiting at most ``timeout``).

        From a worker thread itself (a callback that closes its own session) it does not wait.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        current = threading.current_thread()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    _log.warning("callback thread %s still busy after shutdown", thread.name)


class EventChannel:
    """One session's ordered stream of callback invocations."""

    def __init__(self, dispatcher: CallbackDispatcher, label: str) -> None:
        self._dispatcher = dispatcher
        self._label = label
        self._pending: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._scheduled = False
        self._idle = threading.Condition(self._lock)

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Queue ``callback(*args)``; callable from any thread, returns at once."""
        with self._lock:
            self._pending.append((callback, args))
            if self._scheduled:
                return
            self._scheduled = True
        self._schedule()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every posted callback has run; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._scheduled and not self._pending, timeout)

    def _schedule(self) -> None:
        if not self._dispatcher._submit(self._drain):
            # Shut down (or interpreter exiting): nobody is left to deliver to.
            with self._lock:
                dropped = len(self._pending)
                self._pending.clear()
                self._scheduled = False
                self._idle.notify_all()
            _log.debug("%s: dispatcher closed, %d callbacks dropped", self._label, dropped)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._scheduled = False
                    self._idle.notify_all()
                    return
                callback, args = self._pending.popleft()
            try:
                callback(*args)
            except Exception:
                name = getattr(callback, "__qualname__", repr(callback))
                _log.exception("%s: callback %s raised; continuing", self._label, name)
