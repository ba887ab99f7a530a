"""The wire protocol module: URLs, subscribe tokens, message parsing, server error texts."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decart_sync import _protocol as p
from decart_sync.errors import (
    InsufficientCreditsError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    ModelNotFoundError,
    ServerAtCapacityError,
    SignalingError,
)


def test_realtime_url_percent_encodes_and_orders_query() -> None:
    url = p.realtime_url(
        "https://api3.decart.ai/",
        url_path="/v1/stream",
        model="lucy-2.1",
        api_key="k/+ y",
        agent="decart-sync/0.1.0 lang/py",
    )
    assert url == (
        "wss://api3.decart.ai/v1/stream?api_key=k%2F%2B%20y&model=lucy-2.1"
        "&user_agent=decart-sync%2F0.1.0%20lang%2Fpy"
    )
    with_res = p.realtime_url(
        "ws://127.0.0.1:9",
        url_path="/v1/stream",
        model="m",
        api_key="k",
        agent="a",
        resolution="720p",
    )
    assert with_res.startswith("ws://127.0.0.1:9/v1/stream?api_key=k&model=m&resolution=720p&")


@pytest.mark.parametrize("bad", ["ftp://x", "api3.decart.ai", "", "wss://", None])
def test_bad_base_urls_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidBaseURLError):
        p.websocket_base(bad)  # type: ignore[arg-type]


def test_subscribe_token_round_trip_and_url() -> None:
    token = p.SubscribeToken("abc123", "127.0.0.1", 8765)
    encoded = token.encode()
    assert json.loads(base64.urlsafe_b64decode(encoded)) == {
        "sid": "abc123",
        "ip": "127.0.0.1",
        "port": 8765,
    }
    assert p.SubscribeToken.decode(encoded) == token
    url = p.subscribe_url("ws://127.0.0.1:8765", token, api_key="k", agent="a")
    assert (
        url == "ws://127.0.0.1:8765/subscribe/abc123?IP=127.0.0.1&port=8765&api_key=k&user_agent=a"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64 !!",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'{"sid": "a", "ip": "x"}').decode(),
        base64.urlsafe_b64encode(b'{"sid": "a", "ip": "x", "port": "80"}').decode(),
    ],
)
def test_malformed_subscribe_tokens_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="subscribe token"):
        p.SubscribeToken.decode(bad)


def test_set_image_distinguishes_omitted_from_null() -> None:
    msg = p.SetImageMessage(image_data=None, prompt=None)
    assert json.loads(msg.to_json()) == {"type": "set_image", "image_data": None, "prompt": None}
    only_image = p.SetImageMessage(image_data="QUJD")
    assert json.loads(only_image.to_json()) == {"type": "set_image", "image_data": "QUJD"}
    parsed = p.parse_client_message(only_image.to_json())
    assert isinstance(parsed, p.SetImageMessage)
    assert parsed.prompt is p.OMITTED


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "not valid JSON"),
        ("[]", "'type'"),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "prompt"}', "missing field 'prompt'"),
        ('{"type": "prompt", "prompt": 3}', "must be a string"),
        ('{"type": "prompt", "prompt": "a", "enhance_prompt": "yes"}', "true or false"),
        ('{"type": "ice-candidate", "candidate": "x"}', "an object"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_client_message_parsing_is_strict(text: str | bytes, fragment: str) -> None:
    with pytest.raises(p.ProtocolViolation, match=fragment):
        p.parse_client_message(text)


def test_server_messages_parse_and_unknown_types_are_ignored() -> None:
    tick = p.parse_server_message('{"type": "generation_tick", "seconds": 3}')
    assert tick == p.GenerationTickMessage(3)
    ack = p.parse_server_message('{"type": "prompt_ack", "prompt": "a", "success": false}')
    assert ack == p.PromptAckMessage("a", False, None)
    assert p.parse_server_message('{"type": "livekit_join", "room": "r"}') is None
    with pytest.raises(p.ProtocolViolation):
        p.parse_server_message('{"type": "session_id", "session_id": "s"}')


@given(
    st.text(min_size=1),
    st.booleans(),
    st.one_of(st.none(), st.text()),
)
def test_messages_round_trip(prompt: str, enhance: bool, image: str | None) -> None:
    for msg in (
        p.PromptMessage(prompt, enhance),
        p.SetImageMessage(image, prompt, enhance),
        p.IceCandidateMessage(p.IceCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", 0, "0")),
        p.EndOfCandidatesMessage(),
    ):
        assert p.parse_client_message(msg.to_json()) == msg


def test_a_browsers_trickled_candidates_parse() -> None:
    # JSON.stringify(RTCIceCandidate): usernameFragment besides, mid and index possibly null,
    # and null for the end of candidates.
    line = (
        "candidate:1 1 udp 2122262783 127.0.0.2 45678 typ host generation 0 ufrag Ab network-id 1"
    )
    browser = {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "Ab"}
    message = p.parse_client_message(json.dumps({"type": "ice-candidate", "candidate": browser}))
    assert message == p.IceCandidateMessage(p.IceCandidate(line, 0, "0"))
    unplaced = {**browser, "sdpMid": None, "sdpMLineIndex": None}
    message = p.parse_client_message(json.dumps({"type": "ice-candidate", "candidate": unplaced}))
    assert message == p.IceCandidateMessage(p.IceCandidate(line, None, None))
    end = p.parse_client_message('{"type": "ice-candidate", "candidate": null}')
    assert isinstance(end, p.EndOfCandidatesMessage)
    assert json.loads(end.to_json()) == {"type": "ice-candidate", "candidate": None}
    for bad in ({**browser, "sdpMLineIndex": "0"}, {"candidate": line, "sdpMid": "0"}):
        with pytest.raises(p.ProtocolViolation, match="sdpMLineIndex"):
            p.parse_client_message(json.dumps({"type": "ice-candidate", "candidate": bad}))


@pytest.mark.parametrize(
    ("text", "kind", "permanent"),
    [
        (p.CAPACITY_ERROR, ServerAtCapacityError, False),
        (p.CONCURRENCY_LIMIT_ERROR, ServerAtCapacityError, False),
        ("insufficient_credits", InsufficientCreditsError, False),
        ("Invalid API key", InvalidAPIKeyError, True),
        ("Permission denied: model 'x' is not allowed", InvalidAPIKeyError, True),
        ("HTTP 401", InvalidAPIKeyError, True),
        ("Model not found: 'x'", ModelNotFoundError, False),
        ("something odd", SignalingError, False),
    ],
)
def test_server_error_texts_map_to_types(text: str, kind: type, permanent: bool) -> None:
    assert isinstance(p.error_from_server(text), kind)
    assert p.is_permanent_error(text) is permanent


def test_user_agent_names_sdk_and_integration() -> None:
    assert p.user_agent().startswith("decart-sync/")
    assert p.user_agent().endswith(" lang/py")
    assert p.user_agent("flask-app").endswith(" lang/py flask-app")


def test_livekit_messages_round_trip_and_hide_the_room_token() -> None:
    assert p.LiveKitJoinMessage(True).to_json() == '{"type": "livekit_join", "passthrough": true}'
    assert p.LiveKitJoinMessage().to_json() == '{"type": "livekit_join"}'  # Python 0.2.4's shape
    joined = p.parse_client_message(
        '{"type": "livekit_join", "passthrough": false, "client_capabilities": {"a": 1}}'
    )
    assert joined == p.LiveKitJoinMessage(False)
    with pytest.raises(p.ProtocolViolation, match="client_capabilities"):
        p.parse_client_message('{"type": "livekit_join", "client_capabilities": 3}')
    info = p.parse_server_message(
        '{"type": "livekit_room_info", "livekit_url": "ws://h/livekit", "token": "jwt.sec.ret",'
        ' "room_name": "room-1", "session_id": "s-1"}'
    )
    assert isinstance(info, p.LiveKitRoomInfoMessage)
    assert (info.room_name, info.session_id, info.token) == ("room-1", "s-1", "jwt.sec.ret")
    assert "jwt.sec.ret" not in repr(info)
    queued = p.parse_server_message('{"type": "queue_position", "position": 2, "queue_size": 7}')
    assert queued == p.QueuePositionMessage(2, 7)
    with pytest.raises(p.ProtocolViolation):
        p.parse_server_message('{"type": "livekit_room_info", "livekit_url": "ws://h"}')


def test_subscribe_tokens_of_both_eras_in_both_base64_alphabets() -> None:
    room = {"room_name": "room/with+odd?chars>>"}
    standard = base64.b64encode(json.dumps(room).encode()).decode()
    urlsafe = base64.urlsafe_b64encode(json.dumps(room).encode()).decode().rstrip("=")
    assert standard != urlsafe
    for token in (standard, urlsafe, p.RoomToken(room["room_name"]).encode()):
        assert p.parse_subscribe_token(token) == p.RoomToken(room["room_name"])
    legacy = p.SubscribeToken("sid-1", "127.0.0.1", 8765)
    assert p.parse_subscribe_token(legacy.encode()) == legacy
    for bad in ("", "not base64!", base64.b64encode(b'{"room_name": ""}').decode(), None):
        with pytest.raises(InvalidInputError, match="subscribe token"):
            p.parse_subscribe_token(bad)
