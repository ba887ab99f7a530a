"""transport="auto": decided from the server's URL alone, before anything is sent."""

from __future__ import annotations

import pytest
from _support.pictures import still_frames
from _support.sessions import SMALL_LUCY, client_of

from decart_sync import DecartClient, InvalidInputError, SignalingError
from decart_sync._protocol import RoomToken, SubscribeToken, parse_subscribe_token
from decart_sync.emulator import Emulator
from decart_sync.models import realtime
from decart_sync.realtime import RealtimeConnectOptions, SubscribeOptions
from decart_sync.realtime._transports import Choice, choose


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8765/v1/stream?model=m",
        "ws://localhost:1/v1/stream",
        "ws://[::1]:1/v1/stream",
        "ws://127.9.9.9:1/v1/stream",
    ],
)
def test_a_server_on_loopback_gets_webrtc(url: str) -> None:
    assert choose("auto", url) == Choice("webrtc")


@pytest.mark.parametrize(
    "url",
    ["wss://api.decart.ai/v1/stream?model=m", "wss://api3.decart.ai/v1/stream", "ws://10.1.2.3/x"],
)
def test_any_other_server_gets_livekit_with_a_fallback(url: str) -> None:
    assert choose("auto", url) == Choice("livekit", fallback=True)


def test_an_explicit_choice_is_kept_and_never_falls_back() -> None:
    assert choose("livekit", "ws://127.0.0.1:1/v1/stream") == Choice("livekit")
    assert choose("webrtc", "wss://api.decart.ai/v1/stream") == Choice("webrtc")


def test_a_codec_the_chosen_transport_cannot_send_is_refused() -> None:
    assert choose("livekit", "wss://api.decart.ai/", "vp9").transport == "livekit"
    with pytest.raises(InvalidInputError, match="vp9.*webrtc"):
        choose("auto", "ws://127.0.0.1:1/", "vp9")


def test_bad_transports_and_speeds_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="transport must be one of"):
        RealtimeConnectOptions(model=realtime("lucy-2.1"), transport="quic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="transport must be one of"):
        SubscribeOptions(token="t", transport="")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="speed 'fast' is not offered by lucy-restyle-2"):
        RealtimeConnectOptions(model=realtime("lucy-restyle-2"), speed="fast")
    assert RealtimeConnectOptions(model=realtime("lucy-2.6"), speed="fast").speed == "fast"


def test_a_session_on_the_local_emulator_says_it_uses_webrtc(emulator: Emulator) -> None:
    with (
        client_of(emulator) as client,  # transport "auto", whatever this run's --transport
        client.realtime.connect(SMALL_LUCY, still_frames()) as session,
    ):
        assert session.transport == "webrtc"
        assert session.stats().transport == "webrtc"
        token = session.subscribe_token
        assert isinstance(parse_subscribe_token(token), SubscribeToken)
        with pytest.raises(InvalidInputError, match="legacy"):
            client.realtime.subscribe(token, transport="livekit")


def test_a_room_token_cannot_be_watched_over_webrtc(client: DecartClient) -> None:
    with pytest.raises(InvalidInputError, match="LiveKit room"):
        client.realtime.subscribe(RoomToken("decart-abc").encode(), transport="webrtc")


@pytest.mark.emulator(transports=("webrtc",))
def test_auto_falls_back_to_webrtc_on_the_same_websocket_when_livekit_join_is_unknown(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that speaks only the legacy transport refuses livekit_join as an unknown
    message; a session whose auto choice was livekit carries on with webrtc on that WebSocket.

    auto picks livekit only for a server off loopback, and no test may contact one: the choice
    is made here as auto makes it for such a server (its rule is tested above); everything
    after it is real."""
    import decart_sync.realtime._session as session_module

    monkeypatch.setattr(session_module, "choose", lambda *args: Choice("livekit", fallback=True))
    with (
        client_of(emulator) as client,  # auto, as the user chose
        client.realtime.connect(SMALL_LUCY, still_frames(), prompt="noir") as session,
    ):
        assert session.transport == "webrtc"
        (info,) = emulator.sessions()
        assert (info.transport, info.prompt) == ("webrtc", "noir")
        assert session.read(timeout=10)[0]
        session.set_prompt("sketch", timeout=10)


@pytest.mark.emulator(transports=("webrtc",))
def test_an_explicit_livekit_session_does_not_fall_back(emulator: Emulator) -> None:
    with (
        client_of(emulator) as client,
        pytest.raises(SignalingError, match="does not know the livekit transport"),
    ):
        client.realtime.connect(SMALL_LUCY, still_frames(), transport="livekit")  # not retried
