"""The organisation's concurrency limit, as a user of the SDK meets it: the session over the
limit fails with ``ServerAtCapacityError`` (try later), not with a permanent error."""

from __future__ import annotations

import pytest
from _session_helpers import FAST_RECONNECT, SMALL_LUCY, still_frames

from decart_sync import DecartClient, ServerAtCapacityError
from decart_sync.emulator import Emulator
from decart_sync.realtime import ReconnectPolicy


def test_the_session_over_the_key_limit_is_a_capacity_error() -> None:
    with (
        Emulator(max_sessions_per_key=1, extra_models=[SMALL_LUCY]) as emu,
        DecartClient(
            api_key=emu.api_key, base_url=emu.url, realtime_base_url=emu.realtime_url
        ) as client,
    ):
        first = client.realtime.connect(SMALL_LUCY, still_frames())
        with pytest.raises(ServerAtCapacityError, match="Concurrent session limit reached"):
            # Tried again (it may pass), quickly here, then reported as what it is.
            client.realtime.connect(
                SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT)
            )
        assert first.is_connected()  # the session within the limit is unaffected
        first.disconnect()
