"""The loop thread: the one bridge between user threads and the SDK's asyncio loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from decart_sync._loop import LoopThread, default_loop
from decart_sync.errors import DecartTimeoutError, LoopThreadError, SessionClosedError


class CustomError(Exception):
    pass


def sdk_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("decart-")}


@pytest.fixture
def loop_thread() -> LoopThread:
    lt = LoopThread("decart-loop-test")
    lt.acquire()
    yield lt
    lt.stop()


def test_thread_is_named_started_lazily_and_joined_on_release() -> None:
    before = sdk_threads()
    lt = LoopThread("decart-loop-lazy")
    assert "decart-loop-lazy" not in sdk_threads()
    lt.acquire()
    lt.acquire()
    assert "decart-loop-lazy" in sdk_threads()
    lt.release()
    assert lt.running
    lt.release()
    assert not lt.running
    assert sdk_threads() == before


def test_run_returns_result_on_the_loop_thread(loop_thread: LoopThread) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert loop_thread.run(where(), timeout=5) == "decart-loop-test"


def test_exception_keeps_its_type_across_threads(loop_thread: LoopThread) -> None:
    async def boom() -> None:
        raise CustomError("from the loop")

    with pytest.raises(CustomError, match="from the loop"):
        loop_thread.run(boom(), timeout=5)


def test_timeout_cancels_the_coroutine_in_the_loop(loop_thread: LoopThread) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(DecartTimeoutError, match=r"0\.2s"):
        loop_thread.run(forever(), timeout=0.2)
    assert cancelled.wait(5)


def test_coroutine_raising_timeout_error_is_not_confused_with_ours(
    loop_thread: LoopThread,
) -> None:
    async def own_timeout() -> None:
        raise TimeoutError("inner")

    with pytest.raises(TimeoutError, match="inner") as info:
        loop_thread.run(own_timeout(), timeout=5)
    assert not isinstance(info.value, DecartTimeoutError)


def test_submit_returns_a_concurrent_future(loop_thread: LoopThread) -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    future = loop_thread.submit(add(2, 3))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(5) == 5


def test_run_from_the_loop_thread_is_a_clear_error(loop_thread: LoopThread) -> None:
    async def inner() -> int:
        return 1

    async def outer() -> str:
        try:
            loop_thread.run(inner(), timeout=1)
        except LoopThreadError as exc:
            return exc.message
        return "no error"

    assert "deadlock" in loop_thread.run(outer(), timeout=5)


def test_stop_cancels_pending_tasks_and_joins() -> None:
    lt = LoopThread("decart-loop-stop")
    lt.acquire()
    started = threading.Event()
    cancelled = threading.Event()

    async def pending() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lt.submit(pending())
    assert started.wait(5)
    lt.stop()
    assert cancelled.is_set()
    assert "decart-loop-stop" not in sdk_threads()
    with pytest.raises(SessionClosedError):
        lt.run(pending(), timeout=1)


def test_media_executor_threads_are_named_and_end_with_the_loop() -> None:
    lt = LoopThread("decart-loop-media")
    lt.acquire()

    async def in_executor() -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    assert lt.run(in_executor(), timeout=5).startswith("decart-codec")
    assert (
        lt.media_executor.submit(threading.current_thread).result(5).name.startswith("decart-media")
    )
    lt.release()
    assert not any(n.startswith(("decart-media", "decart-codec")) for n in sdk_threads())


def test_default_loop_is_shared() -> None:
    assert default_loop() is default_loop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_use_after_fork_is_a_clear_error(loop_thread: LoopThread) -> None:
    async def one() -> int:
        return 1

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            loop_thread.run(one(), timeout=1)
            result = b"no error"
        except LoopThreadError as exc:
            result = b"ok" if b"fork" in exc.message.encode() else b"wrong message"
        except BaseException as exc:  # pragma: no cover - reported to the parent
            result = repr(exc).encode()
        os.write(write_fd, result)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        answer = reader.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert loop_thread.run(one(), timeout=5) == 1  # the parent is unaffected


def test_open_sessions_are_closed_at_exit_so_exit_never_hangs() -> None:
    # A non-daemon thread that only ends when the "session" closes stands in for aiortc's
    # decoder threads; without the exit hook the interpreter would wait on it forever.
    script = textwrap.dedent(
        """
        import threading
        from decart_sync._loop import LoopThread

        closed = threading.Event()
        lt = LoopThread("decart-loop-exit")
        lt.acquire()
        lt.add_exit_closer(lambda: (print("closer ran", flush=True), closed.set()))
        threading.Thread(target=closed.wait, name="fake-decoder").start()
        print("leaving main", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["leaving main", "closer ran"]


def test_green_thread_monkey_patching_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.ModuleType("gevent.monkey")
    fake.is_module_patched = lambda name: name == "threading"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gevent.monkey", fake)
    lt = LoopThread("decart-loop-green")
    with pytest.warns(RuntimeWarning, match="gthread"):
        lt.acquire()
    lt.release()
