"""The C allocator gives memory back: the first session limits glibc to one arena (threads
share, and so reuse, the free space), the last one to close trims the heap; a user who opts out
or chose an arena limit keeps malloc as configured.

Each check runs in a fresh interpreter: the setting is process-wide and cannot be undone, and
this test process has run sessions already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="glibc only",
)

_PROBE = textwrap.dedent(
    """
    import ctypes, os, re, sys, threading
    from decart_sync import _allocator

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    libc.open_memstream.restype = ctypes.c_void_p
    libc.open_memstream.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)

    def arenas():
        text, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(text), ctypes.byref(size))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return len(re.findall(rb"<heap nr=", text.value))

    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def threads_allocate():
        # Four threads allocating at once: by default each gets an arena of its own.
        barrier = threading.Barrier(4)
        def work():
            barrier.wait()
            blocks = [libc.malloc(4096) for _ in range(64)]
            barrier.wait()
            for block in blocks:
                libc.free(block)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()

    def freed_but_kept_mb():
        # 200 MB of heap blocks freed below one kept block: free() cannot shrink the heap.
        blocks = [libc.malloc(100_000) for _ in range(2000)]
        for block in blocks: libc.memset(block, 1, 100_000)
        for block in blocks[:-1]: libc.free(block)
        return rss_mb()

    _allocator.session_opened()
    threads_allocate()
    held = freed_but_kept_mb()
    _allocator.session_closed()
    given_back = held - rss_mb()
    print(arenas() > 1, given_back > 100, _allocator.open_sessions())
    """
)


def probe(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_sessions_share_one_arena_and_the_last_close_gives_free_memory_back() -> None:
    assert probe() == "False True 0"


def test_the_user_can_keep_the_allocator_as_configured() -> None:
    # glibc's own behaviour, which the SDK changes: an arena per thread, free memory kept.
    assert probe(DECART_SYNC_TUNE_MALLOC="0") == "True False 0"


def test_an_arena_limit_the_user_chose_is_left_alone() -> None:
    assert probe(GLIBC_TUNABLES="glibc.malloc.arena_max=4") == "True True 0"
