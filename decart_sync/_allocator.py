"""Memory goes back to the operating system when sessions end (glibc only).

A session allocates and frees video frames all the time (decoded pictures, BGR arrays, encoder
input: 0.3-3 MB each), in native code (FFmpeg, libvpx, libwebrtc) and on several threads. glibc's
malloc gives each thread that allocates its own arena, up to eight per core, and an arena keeps
what is freed in it for the next allocation: fast while frames flow, but once the sessions close,
each arena still holds its share of frame buffers. A process that ran eight 1280x720 sessions and
closed them held 1.3 GB it no longer used (benchmarks/memory.py).

So, once per process, when the first session opens, the SDK asks glibc for a single arena
(``M_ARENA_MAX`` = 1): every thread's frames come from, and go back to, the same heap, so a
buffer freed by one thread is reused by the next frame whichever thread allocates it, and the
free space does not multiply by the number of threads. When the last session of the process
closes, the cycle collector runs (aiortc's peer connections are reference cycles that hold
codec state, 4 MB a session at 1280x720) and ``malloc_trim(0)`` hands the heap's free pages
back. Small allocations still go through each thread's lock-free cache, so sharing the arena
costs little at video rates (figures in benchmarks/README.md, "Memory").

(Mapping frame-sized blocks instead, with a fixed ``M_MMAP_THRESHOLD``, also returns them, but
every frame buffer then arrives as fresh pages the kernel must fault in and zero: 1.3 ms more CPU
per 1280x720 BGR frame.)

The setting is process-wide. It is left alone when the user chose one (``GLIBC_TUNABLES`` names
``glibc.malloc.arena_max``, or ``MALLOC_ARENA_MAX`` is set), on other C libraries, and when
``DECART_SYNC_TUNE_MALLOC=0``; the trim is skipped then too.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import threading
from typing import Any

from decart_sync._redact import get_logger

_log = get_logger(__name__)

#: ``mallopt`` parameter number of the arena limit (malloc.h).
_M_ARENA_MAX = -8
#: Set to ``0`` to leave the C allocator exactly as the process configured it.
OPT_OUT_VARIABLE = "DECART_SYNC_TUNE_MALLOC"

_lock = threading.Lock()
_open_sessions = 0
_tuned = False


@functools.cache
def _glibc() -> Any | None:
    """The process's C library if it is glibc (mallopt and malloc_trim as documented there)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (ValueError, OSError, AttributeError):
        return None  # not glibc (musl, macOS, Windows)
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    except (OSError, AttributeError):
        return None
    return libc


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_VARIABLE, "1") == "0"


def _user_chose_arenas() -> bool:
    return (
        "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", "")
        or "MALLOC_ARENA_MAX" in os.environ
    )


def session_opened() -> None:
    """A session starts: the first one in the process limits malloc to one arena."""
    global _open_sessions, _tuned
    with _lock:
        _open_sessions += 1
        if _tuned:
            return
        _tuned = True
        libc = _glibc()
        if libc is None or _opted_out() or _user_chose_arenas():
            return
        if libc.mallopt(_M_ARENA_MAX, 1) != 1:
            _log.debug("mallopt(M_ARENA_MAX) refused")


def session_closed() -> None:
    """A session has released its resources: after the last one, free pages go back."""
    global _open_sessions
    with _lock:
        if _open_sessions == 0:
            return
        _open_sessions -= 1
        if _open_sessions:
            return
    libc = _glibc()
    if libc is not None and not _opted_out():
        gc.collect()
        libc.malloc_trim(0)


def open_sessions() -> int:
    """How many sessions of this process hold resources now (for tests and stats)."""
    return _open_sessions
