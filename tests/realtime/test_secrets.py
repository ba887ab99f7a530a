"""No repr, and no traceback rendered with its local variables, shows an API key."""

from __future__ import annotations

import traceback

import pytest
from _support.pictures import still_frames
from _support.sessions import SMALL_LUCY, client_of

from decart_sync import DecartClient, InvalidAPIKeyError
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions


def test_a_live_sessions_reprs_show_no_key(client: DecartClient, emulator: Emulator) -> None:
    session = client.realtime.connect(SMALL_LUCY, still_frames())
    try:
        plan = session._controller._plan
        assert emulator.api_key in plan.url  # the key is there, for the wire
        for shown in (repr(plan), repr(session), repr(client), repr(session._controller.__dict__)):
            assert emulator.api_key not in shown
    finally:
        session.disconnect()


@pytest.mark.parametrize("entry", ["client", "seed"])
def test_a_failed_connects_traceback_with_locals_shows_no_key(
    emulator: Emulator, entry: str
) -> None:
    key = "wrong-key-0123456789abcdef"
    with pytest.raises(InvalidAPIKeyError) as info:
        if entry == "client":
            with client_of(emulator, api_key=key) as client:
                client.realtime.connect(SMALL_LUCY, still_frames(), timeout=10)
        else:
            RealtimeClient.connect(
                emulator.url,
                key,
                still_frames(),
                RealtimeConnectOptions(model=SMALL_LUCY),
                timeout=10,
            )
    summary = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    sdk_frames = [f for f in summary.stack if "decart_sync" in f.filename]
    rendered = "".join(summary.stack.format_frame_summary(f) for f in sdk_frames)
    assert sdk_frames and "api_key" in rendered  # the SDK's locals were rendered, keys among them
    assert key not in rendered
