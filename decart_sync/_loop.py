"""The bridge between the blocking world and the SDK's private asyncio loop.

This is the one place where threads meet the event loop. A :class:`LoopThread` runs an asyncio
loop in one named daemon thread; blocking code hands it coroutines with :meth:`LoopThread.run`
(wait for the result, with a timeout) or :meth:`LoopThread.submit` (get a
``concurrent.futures.Future``). Exceptions come back with their original type. Calling ``run()``
from the loop thread itself raises :class:`LoopThreadError` instead of deadlocking.

The thread is leased: it starts with the first :meth:`acquire` and stops with the last
:meth:`release`, so a program that closes its sessions is left with no SDK thread. Alongside the
loop live the small named pools it owns: ``decart-codec`` (the loop's default executor: aiortc's
encoder, signaling socket calls), ``decart-media`` (blocking source reads and conversions) and
the callback dispatcher's ``decart-callback`` threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from decart_sync._dispatch import CallbackDispatcher
from decart_sync._redact import get_logger
from decart_sync._workers import WorkerPool
from decart_sync.errors import DecartTimeoutError, LoopThreadError, SessionClosedError

T = TypeVar("T")

_log = get_logger(__name__)

# How long stop() waits for the loop to wind down before giving up on the thread (it is a daemon,
# so a stuck loop can never keep the interpreter alive).
STOP_TIMEOUT = 5.0
MEDIA_WORKERS = 4

_live_loops: weakref.WeakSet[LoopThread] = weakref.WeakSet()
_live_loops_lock = threading.Lock()


def hand_to_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
) -> bool:
    """Run ``callback(*args)`` on ``loop``'s thread, from any other thread: the one way work
    crosses from a plain thread (a user's, the signaling reader's) to a loop. False when the
    loop is closed, so nobody is there to run it (a session that has just ended)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


class LoopThread:
    """A private asyncio loop in one named thread, shared by everything one client creates."""

    def __init__(self, name: str = "decart-loop") -> None:
        self.name = name
        self._lock = threading.RLock()
        self._leases = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._media: WorkerPool | None = None
        self._codec: concurrent.futures.ThreadPoolExecutor | None = None
        self._dispatcher: CallbackDispatcher | None = None
        # Called (in the caller's thread) before the loop stops at interpreter exit.
        self._closers: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def acquire(self) -> None:
        """Take a lease, starting the thread if it is not running."""
        with self._lock:
            self._check_fork()
            if self._thread is None:
                self._start()
            self._leases += 1

    def release(self) -> None:
        """Give a lease back; the last one stops the thread."""
        with self._lock:
            if self._leases == 0:
                return
            self._leases -= 1
            if self._leases == 0:
                self.stop()

    def _start(self) -> None:
        _warn_if_green_threads()
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        # Two pools: "decart-codec" (the loop's default executor: aiortc's encoder, signaling
        # socket calls; short jobs that exit may wait for) and "decart-media" (source reads,
        # which can block for as long as a user's camera or generator likes, so its workers
        # are daemons that exit does not wait for).
        self._codec = concurrent.futures.ThreadPoolExecutor(
            max_workers=MEDIA_WORKERS, thread_name_prefix="decart-codec"
        )
        loop.set_default_executor(self._codec)
        self._media = WorkerPool(MEDIA_WORKERS, "decart-media")
        self._dispatcher = CallbackDispatcher()
        self._loop = loop
        self._pid = os.getpid()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                self._finish(loop)

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        with _live_loops_lock:
            _live_loops.add(self)
        _log.debug("loop thread %s started", self.name)

    @staticmethod
    def _finish(loop: asyncio.AbstractEventLoop) -> None:
        """Runs on the loop thread once run_forever returns: cancel what is left, then close."""
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=STOP_TIMEOUT))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Cancel pending tasks, stop the loop and join the thread (bounded by ``timeout``).

        Safe to call twice, and from the loop thread itself (then it does not join)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            media, codec, dispatcher = self._media, self._codec, self._dispatcher
            self._loop = self._thread = self._media = self._codec = self._dispatcher = None
            self._leases = 0
        if loop is None or thread is None:
            return
        if os.getpid() != self._pid:
            return  # a forked child has no thread to stop
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout)
            if thread.is_alive():
                _log.warning("loop thread %s did not stop within %.1fs", self.name, timeout)
        joinable = threading.current_thread() is not thread
        if media is not None:
            media.shutdown(wait=joinable, cancel_futures=True)
        if codec is not None:
            codec.shutdown(wait=joinable, cancel_futures=True)
        if dispatcher is not None:
            dispatcher.shutdown()
        _log.debug("loop thread %s stopped", self.name)

    # ------------------------------------------------------------------ crossing the boundary

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        self._check_fork()
        loop = self._loop
        if loop is None:
            raise SessionClosedError(f"{self.name} is not running; the session or client is closed")
        return loop

    @property
    def media_executor(self) -> concurrent.futures.Executor:
        """The pool for blocking media work (reads, conversions); never the loop thread."""
        if self._media is None:
            raise SessionClosedError(f"{self.name} is not running")
        return self._media

    @property
    def dispatcher(self) -> CallbackDispatcher:
        if self._dispatcher is None:
            raise SessionClosedError(f"{self.name} is not running")
        return self._dispatcher

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; its outcome arrives in the returned future."""
        try:
            loop = self.loop
        except BaseException:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for it, re-raising its own exception here.

        On timeout the coroutine is cancelled in the loop and :class:`DecartTimeoutError` raised.
        """
        if self.in_loop_thread():
            coro.close()
            raise LoopThreadError(
                "a blocking SDK call was made on the SDK's own loop thread, where it would "
                "deadlock; call it from another thread or use the *_async/submit form"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the coroutine itself raised TimeoutError
            future.cancel()
            raise DecartTimeoutError(f"operation did not finish within {timeout:g}s") from None
        except BaseException:
            # Ctrl-C while waiting: do not leave the operation running behind the caller's back.
            future.cancel()
            raise

    def call_soon(self, callback: Callable[..., object], *args: object) -> bool:
        """Run a plain callback on the loop thread, from any thread; False if it has stopped."""
        loop = self._loop
        return loop is not None and hand_to_loop(loop, callback, *args)

    # ------------------------------------------------------------------ exit and fork

    def add_exit_closer(self, closer: Callable[[], None]) -> None:
        """Register something to close (a session) if it is still open at interpreter exit."""
        with self._lock:
            self._closers.append(closer)

    def remove_exit_closer(self, closer: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._closers.remove(closer)

    def _close_at_exit(self) -> None:
        with self._lock:
            closers = list(reversed(self._closers))
            self._closers.clear()
        for closer in closers:
            try:
                closer()
            except Exception:
                _log.debug("closer failed at exit", exc_info=True)
        self.stop()

    def _check_fork(self) -> None:
        if os.getpid() != self._pid and self._thread is not None:
            raise LoopThreadError(
                "this DecartClient/session was created before fork(); its loop thread does not "
                "exist in this process. Create clients and sessions after fork (for gunicorn, "
                "do not use --preload for code that opens sessions, or open them in post_fork)"
            )


def _warn_if_green_threads() -> None:
    """gevent/eventlet monkey-patching turns threads into greenlets, and a private asyncio loop
    in a "thread" that is really a greenlet stalls whenever user code does not yield."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    patched = (gevent_monkey is not None and gevent_monkey.is_module_patched("threading")) or (
        eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread")
    )
    if patched:
        warnings.warn(
            "decart_sync runs a real background thread for its event loop; gevent/eventlet "
            "monkey-patching of threading breaks it. Use a threaded server (e.g. gunicorn "
            "-k gthread) instead of a green one.",
            RuntimeWarning,
            stacklevel=3,
        )


def _close_all_at_exit() -> None:
    with _live_loops_lock:
        loops = list(_live_loops)
    for loop_thread in loops:
        if loop_thread.running and os.getpid() == loop_thread._pid:
            loop_thread._close_at_exit()


def _register_exit_hook() -> None:
    # threading._register_atexit runs before the interpreter joins non-daemon threads, which is
    # what we need: aiortc's decoder threads are non-daemon and end only when their peer
    # connection closes, so open sessions must be closed first or exit hangs.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_close_all_at_exit)
    else:  # pragma: no cover - older or alternative interpreters
        import atexit

        atexit.register(_close_all_at_exit)


_register_exit_hook()

_default: LoopThread | None = None
_default_lock = threading.Lock()


def default_loop() -> LoopThread:
    """The loop shared by everything not created through a DecartClient (the classmethod API)."""
    global _default
    with _default_lock:
        if _default is None or _default._pid != os.getpid():
            _default = LoopThread("decart-loop")
        return _default
