"""The session tests again, over the LiveKit transport.

libwebrtc (inside the ``livekit`` package) never uses a loopback interface, so the suite runs
in a private network namespace (``decart_sync.testing``): its clients gather candidates on the
namespace's 127.0.0.2, the in-process emulator listens on 127.0.0.1, and nothing can leave.
Tests about the legacy transport's internals are marked ``webrtc_only`` and skipped there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_INSIDE = "DECART_SYNC_TESTS_IN_NETNS"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_session_suite_passes_over_livekit(private_netns: Callable[..., object]) -> None:
    if os.environ.get(_INSIDE):
        pytest.skip("already the inner run")
    result = private_netns(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/realtime",  # the session tests, and the hub's and receivers' (a few seconds)
            "--transport=livekit",  # all of it, the 50-cycle leak test included
            "-q",
            "-p",
            "no:randomly",
        ],
        timeout=800,
        env={**os.environ, _INSIDE: "1"},
        cwd=str(ROOT),
    )
    output = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 0, output[-6000:]  # type: ignore[attr-defined]
    assert " passed" in output and "no tests ran" not in output
