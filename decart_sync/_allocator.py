"""Frame-sized memory goes back to the operating system when sessions end (glibc only).

A session allocates and frees video frames all the time (decoded pictures, BGR arrays, encoder
input: 0.3-3 MB each), in native code and on many threads. glibc's malloc serves a large block
with ``mmap`` and returns it on ``free``, but each time such a block is freed it raises its mmap
threshold to that block's size; from then on frames come from its arenas (up to 8 per core, one
per thread that allocates), and an arena keeps what is freed inside it. A process that ran eight
1280x720 sessions then closed them all held 1.3 GB it no longer used (benchmarks/memory.py).

So, once per process, when the first session opens, the SDK fixes the mmap threshold at glibc's
own starting value (128 KiB). Fixing it turns off the raise: every frame-sized block is mapped on
allocation and unmapped on free, whichever thread frees it, so nothing frame-sized is kept. The
cost is a fresh mapping per frame buffer (the kernel zeroes its pages), well under a millisecond
per frame; benchmarks/README.md has the figures. When the last session of the process closes,
``malloc_trim(0)`` gives back the free pages the arenas still hold for smaller objects.

The setting is process-wide. It is left alone when the user chose one (``GLIBC_TUNABLES`` names
``glibc.malloc.mmap_threshold``, or ``MALLOC_MMAP_THRESHOLD_`` is set), on other C libraries, and
when ``DECART_SYNC_TUNE_MALLOC=0``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from typing import Any

from decart_sync._redact import get_logger

_log = get_logger(__name__)

#: ``mallopt`` parameter number of the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD = -3
#: glibc's own starting threshold; blocks this size and larger are mapped, not kept in arenas.
MMAP_THRESHOLD = 128 * 1024
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


def _user_chose_a_threshold() -> bool:
    return (
        "glibc.malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")
        or "MALLOC_MMAP_THRESHOLD_" in os.environ
    )


def _tune(libc: Any) -> None:
    global _tuned
    _tuned = True
    if os.environ.get(OPT_OUT_VARIABLE, "1") == "0" or _user_chose_a_threshold():
        _log.debug("malloc left as configured")
        return
    if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        _log.debug("mallopt(M_MMAP_THRESHOLD) refused")


def session_opened() -> None:
    """A session starts: the first one in the process fixes the mmap threshold."""
    global _open_sessions
    with _lock:
        _open_sessions += 1
        if not _tuned:
            libc = _glibc()
            if libc is not None:
                _tune(libc)


def session_closed() -> None:
    """A session has released its resources: after the last one, free pages go back."""
    global _open_sessions
    with _lock:
        if _open_sessions == 0:
            return
        _open_sessions -= 1
        if _open_sessions:
            return
    if os.environ.get(OPT_OUT_VARIABLE, "1") == "0":
        return
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def open_sessions() -> int:
    """How many sessions of this process hold resources now (for tests and stats)."""
    return _open_sessions
