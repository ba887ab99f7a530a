"""The organisation's concurrency limit, as a user of the SDK meets it: the session over the
limit fails with ``ServerAtCapacityError`` (try later), not with a permanent error."""

from __future__ import annotations

import pytest
from _support.pictures import still_frames
from _support.sessions import FAST_RECONNECT, SMALL_LUCY

from decart_sync import DecartClient, ServerAtCapacityError
from decart_sync.realtime import ReconnectPolicy


@pytest.mark.emulator(max_sessions_per_key=1, extra_models=[SMALL_LUCY])
def test_the_session_over_the_key_limit_is_a_capacity_error(client: DecartClient) -> None:
    first = client.realtime.connect(SMALL_LUCY, still_frames())
    with pytest.raises(ServerAtCapacityError, match="Concurrent session limit reached"):
        # Tried again (it may pass), quickly here, then reported as what it is.
        client.realtime.connect(
            SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT)
        )
    assert first.is_connected()  # the session within the limit is unaffected
    first.disconnect()
