"""Against Decart's real service: for a maintainer with an API key (it cannot run in CI, which
reaches no service). Opt in with ``DECART_API_KEY=... pytest -m live tests/live``.

What it checks is what a user needs on day one: ``auto`` picks ``livekit`` for the service, the
session reaches ``generating``, transformed frames arrive, ``set_prompt`` is acknowledged, and a
viewer with the session's token sees frames too.
"""

from __future__ import annotations

import os

import pytest

from decart_sync import DecartClient
from decart_sync.media import test_pattern

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("DECART_API_KEY"), reason="needs DECART_API_KEY (Decart's service)"
    ),
]


def test_a_session_on_the_live_service() -> None:
    with (
        DecartClient() as client,  # the key and URLs from the environment
        client.realtime.connect("lucy-2.1", test_pattern(), prompt="anime", timeout=60) as session,
    ):
        assert session.transport == "livekit"
        session.wait_for_state("generating", timeout=60)
        frame = session.get_frame(timeout=30)
        assert frame.shape == (720, 1280, 3)
        session.set_prompt("film noir", timeout=15)
        token = session.subscribe_token
        assert token
        with client.realtime.subscribe(token, timeout=60) as viewer:
            assert viewer.read(timeout=30)[0]
