"""The C allocator gives frame-sized memory back: glibc's mmap threshold is fixed by the first
session (and left alone when the user opts out), so freed frames are unmapped at once.

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

# Allocates a 4 MiB block twice, freeing each: prints whether the second one was mapped.
# glibc maps the first (above its starting threshold), then raises the threshold to 4 MiB when it
# is freed, so by default the second comes from the heap and stays there once freed.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from decart_sync import _allocator

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    SIZE = 4 << 20

    def mapped_when_allocated():
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(SIZE)
        mapped = libc.mallinfo2().hblkhd - before >= SIZE
        libc.free(block)
        return mapped

    if sys.argv[1] == "session":
        _allocator.session_opened()
    first, second = mapped_when_allocated(), mapped_when_allocated()
    if sys.argv[1] == "session":
        _allocator.session_closed()
    print(first, second, _allocator.open_sessions())
    """
)


def probe(mode: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_without_a_session_glibc_keeps_a_freed_frame_sized_block() -> None:
    # The behaviour the SDK changes: the second block comes from the heap, and is kept there.
    assert probe("plain") == "True False 0"


def test_after_the_first_session_frame_sized_blocks_are_mapped_and_returned() -> None:
    assert probe("session") == "True True 0"


def test_the_user_can_keep_the_allocator_as_configured() -> None:
    assert probe("session", DECART_SYNC_TUNE_MALLOC="0") == "True False 0"


def test_a_threshold_the_user_chose_is_left_alone() -> None:
    # 8 MiB chosen: a 4 MiB block is never mapped, session or not.
    chosen = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=8388608"}
    assert probe("session", **chosen) == "False False 0"
