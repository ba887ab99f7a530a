"""Client tokens end to end: created over REST, then used like an API key by a session."""

from __future__ import annotations

import pytest
from _support.pictures import still_frames
from _support.sessions import SMALL_LUCY, client_of

from decart_sync import DecartClient, InvalidAPIKeyError, TokenCreateError, models
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions


def test_a_client_token_opens_its_allowed_model_only(
    client: DecartClient, emulator: Emulator
) -> None:
    token = client.tokens.create(expires_in=60, allowed_models=["lucy-2.1"])
    assert token.api_key.startswith("ek_")
    assert token.permissions is not None and token.permissions["models"] == ["lucy-2.1"]
    session = RealtimeClient.connect(
        emulator.url, token.api_key, still_frames(), RealtimeConnectOptions(model=SMALL_LUCY)
    )
    try:
        assert session.read(timeout=10)[0]
    finally:
        session.disconnect()
    other = models.ModelDefinition("lucy-restyle-2", "/v1/stream", 30, 320, 176)
    with pytest.raises(InvalidAPIKeyError, match="not allowed"):
        RealtimeClient.connect(
            emulator.url, token.api_key, still_frames(), RealtimeConnectOptions(model=other)
        )


def test_a_client_token_cannot_create_tokens(client: DecartClient, emulator: Emulator) -> None:
    token = client.tokens.create()
    with (
        client_of(emulator, api_key=token.api_key) as limited,
        pytest.raises(TokenCreateError) as info,
    ):
        limited.tokens.create()
    assert info.value.status == 403
    assert token.api_key not in str(info.value)
