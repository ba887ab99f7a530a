"""A small executor of named daemon threads for blocking media work.

``concurrent.futures.ThreadPoolExecutor`` joins its workers at interpreter exit, so one worker
stuck in a user's blocking read (a camera that stopped answering, a generator waiting on a
queue) would hang the program on its way out. The SDK's media work runs here instead: the
workers are daemon threads that the exit does not wait for, and everything else — named threads,
futures, ``shutdown(cancel_futures=...)`` — behaves like the standard pool.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Longest shutdown(wait=True) waits for idle workers to leave (they leave at once).
JOIN_TIMEOUT = 5.0

_Work = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class WorkerPool(concurrent.futures.Executor):
    """Up to ``max_workers`` daemon threads named ``{name}-{n}``, started as work arrives."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._busy: set[threading.Thread] = set()  # workers running a job just now
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError(f"{self._name} pool is shut down")
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                me = threading.current_thread()
                with self._lock:
                    self._busy.add(me)
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                finally:
                    with self._lock:
                        self._busy.discard(me)
            del item, future, fn, args, kwargs  # drop references before waiting again
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; with ``wait``, join the idle workers. A worker in the middle of a
        job is not waited for: the job may be a user's read that never returns, and a
        ``disconnect()`` must not wait on it. Being a daemon, it leaves once its job returns, or
        with the process."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
            busy = set(self._busy)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            current = threading.current_thread()
            deadline = time.monotonic() + JOIN_TIMEOUT
            for thread in threads:
                if thread is not current and thread not in busy:
                    thread.join(max(0.0, deadline - time.monotonic()))
