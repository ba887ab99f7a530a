"""Delivery of user callbacks: on a small pool of named threads, never on the loop thread.

Each session posts its events to its own :class:`EventChannel`. A channel delivers its events one
at a time, in the order they were posted, on whichever pool thread is free; different sessions'
channels run in parallel. A callback that raises is logged with its traceback and the next event
is delivered as usual. Posting is O(1) and never waits for a callback, so a slow callback cannot
delay the loop.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from decart_sync._redact import get_logger
from decart_sync._workers import WorkerPool

_log = get_logger(__name__)

_Job = Callable[[], None]


class CallbackDispatcher:
    """A small pool of named worker threads (``decart-callback-N``), started on first use and
    ended on shutdown, with an ordered channel per session on top."""

    def __init__(self, workers: int = 2, name: str = "decart-callback") -> None:
        self._pool = WorkerPool(workers, name)

    def channel(self, label: str) -> EventChannel:
        """A new ordered channel (one per session)."""
        return EventChannel(self, label)

    def _submit(self, job: _Job) -> bool:
        try:
            self._pool.submit(job)
        except RuntimeError:
            return False  # shut down
        return True

    def shutdown(self) -> None:
        """Let queued callbacks run, then end the workers. A callback still running is not
        waited for (it may be the one closing its own session); its worker ends after it."""
        self._pool.shutdown(wait=True)


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
