"""The LiveKit-era control channel on ``/v1/stream`` and ``POST /watch-stream/{room}``: golden
transcripts of what Decart's current clients send (protocol.md sections 2-4), with a raw
WebSocket client and no libwebrtc.

- Python ``decart`` 0.2.4: ``livekit_join`` with no field, waits for the room info, then sends
  its initial state and waits for the ack (with no state: the passthrough ``set_image`` after
  publishing).
- JS ``@decartai/sdk`` 0.1.x: ``livekit_join`` with ``passthrough``, and at once, as its own
  frame, the initial state if the caller set one.

A room token the emulator hands out is checked against the room server itself
(``/livekit/rtc/validate``), which answers as LiveKit's does; the room is joined with the real
``livekit`` SDK in ``tests/official/test_decart_python_livekit.py``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from rawclient import MediaLoop, RawClient, http, solid_png

from decart_sync._protocol import CAPACITY_ERROR, CONCURRENCY_LIMIT_ERROR
from decart_sync.emulator import Emulator
from decart_sync.emulator.auth import INVALID_API_KEY, TOKEN_EXPIRED
from decart_sync.testing import wait_until

Connect = Callable[..., RawClient]
ROOM_INFO_FIELDS = {"type", "livekit_url", "token", "room_name", "session_id"}
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008


@pytest.fixture
def open_producer(media: MediaLoop) -> Iterator[Callable[..., RawClient]]:
    """``open_producer(emulator, api_key=..., model=...)``: a raw producer WebSocket to any
    emulator, closed after the test."""
    clients: list[RawClient] = []

    def open_client(
        emulator: Emulator, api_key: str | None = None, model: str = "lucy-2.1"
    ) -> RawClient:
        key = emulator.api_key if api_key is None else api_key
        url = RawClient.producer_url(emulator.realtime_url, key, model)
        client = RawClient(url, media)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def _png_b64(rgb: tuple[int, int, int] = (0, 200, 0)) -> str:
    return base64.b64encode(solid_png(rgb)).decode()


def _validate(room_info: dict[str, Any]) -> requests.Response:
    """Ask the room server whether a ticket's token would be let in (LiveKit's validate call)."""
    url = room_info["livekit_url"].replace("ws://", "http://", 1) + "/rtc/validate"
    return requests.get(url, headers={"Authorization": f"Bearer {room_info['token']}"}, timeout=10)


def _watch(emulator: Emulator, room_name: str, key: str | None, **headers: str) -> Any:
    if key is not None:
        headers["x-api-key"] = key
    return requests.post(f"{emulator.url}/watch-stream/{room_name}", headers=headers, timeout=10)


def _only_session(emulator: Emulator) -> Any:
    sessions = emulator.sessions()
    assert len(sessions) == 1, sessions
    return sessions[0]


# ---------------------------------------------------------------- Python 0.2.4's order


def test_python_order_join_then_room_info_then_the_initial_prompt(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect(livekit_early_room_info="true")  # in 0.2.4's URL; changes nothing
    client.send({"type": "livekit_join"})
    info = client.expect("livekit_room_info")

    assert set(info) == ROOM_INFO_FIELDS
    assert info["livekit_url"] == f"ws://127.0.0.1:{emulator.port}/livekit"
    session = _only_session(emulator)
    assert info["session_id"] == session.session_id
    assert info["room_name"] == session.room_name
    assert (session.transport, session.state) == ("livekit", "waiting_state")
    # The token is a real LiveKit access token for this room.
    response = _validate(info)
    assert (response.status_code, response.text) == (200, "success")

    ack = client.set_prompt("a pencil sketch")
    assert ack == {
        "type": "prompt_ack",
        "prompt": "a pencil sketch",
        "success": True,
        "error": None,
    }
    assert client.types() == ["livekit_room_info", "prompt_ack"]
    session = _only_session(emulator)
    assert (session.state, session.effect) == ("negotiating", "sketch")
    # Nothing legacy: no session_id, answer, ready or candidates.
    assert client.of_type("error") == []


def test_python_order_with_an_initial_image_and_prompt(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.send({"type": "livekit_join"})
    client.expect("livekit_room_info")
    ack = client.set_image(_png_b64(), prompt="neon city", enhance_prompt=False)
    assert ack == {"type": "set_image_ack", "success": True, "error": None}
    session = _only_session(emulator)
    assert session.has_image and (session.prompt, session.enhance) == ("neon city", False)
    assert client.types() == ["livekit_room_info", "set_image_ack"]


def test_python_order_without_state_sends_passthrough_after_publishing(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.send({"type": "livekit_join"})
    client.expect("livekit_room_info")
    assert _only_session(emulator).state == "waiting_state"  # its frames are dropped meanwhile
    ack = client.set_image(None, prompt=None)
    assert ack == {"type": "set_image_ack", "success": True, "error": None}
    session = _only_session(emulator)
    assert (session.state, session.effect, session.prompt) == ("negotiating", "passthrough", None)


# ---------------------------------------------------------------- JS 0.1.x's order


def test_js_order_join_and_the_prompt_frame_at_once(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": False})
    client.send({"type": "prompt", "prompt": "film noir", "enhance_prompt": True})
    client.expect("prompt_ack")
    info = client.expect("livekit_room_info")
    assert set(info) == ROOM_INFO_FIELDS
    assert client.types() == ["livekit_room_info", "prompt_ack"]
    assert client.of_type("prompt_ack")[0]["success"] is True
    session = _only_session(emulator)
    assert (session.transport, session.effect) == ("livekit", "noir")


def test_js_order_with_an_image_as_its_own_frame(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": False, "client_capabilities": {}})
    client.send({"type": "set_image", "image_data": _png_b64(), "prompt": "sketch"})
    assert client.expect("set_image_ack")["success"] is True
    client.expect("livekit_room_info")
    assert client.of_type("error") == []
    assert _only_session(emulator).has_image


def test_js_passthrough_join_needs_no_state_message(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": True})
    client.expect("livekit_room_info")
    # Passthrough is in effect at once: no ack is owed, none is sent.
    session = _only_session(emulator)
    assert (session.state, session.effect) == ("negotiating", "passthrough")
    assert client.types() == ["livekit_room_info"]
    # Control goes on as usual afterwards.
    assert client.set_prompt("cartoon")["success"] is True


# ---------------------------------------------------------------- the queue fault


def test_queued_sessions_are_told_their_place_before_their_room(
    emulator: Emulator, connect: Connect
) -> None:
    emulator.queue_next(2, 2.5)
    first = connect()
    first.send({"type": "livekit_join"})
    assert first.expect("queue_position") == {"type": "queue_position", "position": 1,
                                              "queue_size": 1}  # fmt: skip
    emulator.wait_for(lambda emu: [s.state for s in emu.sessions()] == ["queued"], timeout=10)
    second = connect()
    # JS's order while queued: the state is taken (and acked) before the room is handed out.
    second.send({"type": "livekit_join", "passthrough": False})
    second.send({"type": "prompt", "prompt": "sketch", "enhance_prompt": True})
    assert second.expect("queue_position") == {"type": "queue_position", "position": 2,
                                               "queue_size": 2}  # fmt: skip
    for client in (first, second):
        client.expect("livekit_room_info")
        types = client.types()
        # Zero or more places, then the room, once.
        assert types.count("livekit_room_info") == 1
        assert "queue_position" not in types[types.index("livekit_room_info") :]
    assert second.of_type("prompt_ack")[0]["success"] is True
    assert [m["position"] for m in first.of_type("queue_position")] == [1] * len(
        first.of_type("queue_position")
    )
    # The fault held two sessions: the third gets its room at once.
    third = connect()
    third.send({"type": "livekit_join"})
    third.expect("livekit_room_info")
    assert third.types() == ["livekit_room_info"]


def test_a_client_leaving_the_queue_ends_its_session(emulator: Emulator, connect: Connect) -> None:
    emulator.queue_next(1, 60)
    client = connect()
    client.send({"type": "livekit_join"})
    client.expect("queue_position")
    client.close()
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_the_queue_fault_over_the_admin_api(emulator: Emulator, connect: Connect) -> None:
    auth = {"Authorization": f"Bearer {emulator.admin_token}"}
    url = f"{emulator.url}/_emulator/faults/queue-next"
    assert http("POST", url, {"n": 1, "seconds": 0}, auth) == (200, {"ok": True})
    assert http("POST", url, {"n": -1, "seconds": 1}, auth)[0] == 400
    assert http("POST", url, {"n": 1}, auth)[0] == 400
    client = connect()
    client.send({"type": "livekit_join"})
    client.expect("livekit_room_info")
    assert client.types() == ["queue_position", "livekit_room_info"]


# ---------------------------------------------------------------- errors and admission


@pytest.mark.parametrize(
    ("key", "model", "error", "code"),
    [
        ("not-a-key", "lucy-2.1", INVALID_API_KEY, POLICY_VIOLATION),
        (None, "lucy-2", "Model not found: 'lucy-2'", POLICY_VIOLATION),
    ],
    ids=["bad-key", "unknown-model"],
)
def test_a_rejected_connection_gets_an_error_and_a_close(
    emulator: Emulator,
    open_producer: Callable[..., RawClient],
    key: str | None,
    model: str,
    error: str,
    code: int,
) -> None:
    client = open_producer(emulator, api_key=key, model=model)
    client.send({"type": "livekit_join"})
    assert client.wait_closed().code == code
    assert [m["error"] for m in client.of_type("error")] == [error]
    assert client.of_type("livekit_room_info") == []


def test_an_expired_client_token_is_refused(
    emulator: Emulator, open_producer: Callable[..., RawClient]
) -> None:
    token = emulator.create_token(expires_in=1)
    issued = time.time()
    wait_until(lambda: time.time() > issued + 1.2, timeout=10, what="the token's expiry")
    client = open_producer(emulator, api_key=token)
    client.send({"type": "livekit_join"})
    assert client.wait_closed().code == POLICY_VIOLATION
    assert [m["error"] for m in client.of_type("error")] == [TOKEN_EXPIRED]


@pytest.mark.parametrize(
    ("limits", "error"),
    [({"max_sessions": 1}, CAPACITY_ERROR), ({"max_sessions_per_key": 1}, CONCURRENCY_LIMIT_ERROR)],
    ids=["capacity", "concurrency"],
)
def test_a_session_over_the_limit_is_told_to_try_later(
    open_producer: Callable[..., RawClient], limits: dict[str, int], error: str
) -> None:
    with Emulator(**limits) as emulator:  # type: ignore[arg-type]
        first = open_producer(emulator)
        first.send({"type": "livekit_join"})
        first.expect("livekit_room_info")
        # A client token counts against the key that minted it.
        second = open_producer(emulator, api_key=emulator.create_token())
        second.send({"type": "livekit_join"})
        assert second.wait_closed().code == TRY_AGAIN_LATER
        assert [m["error"] for m in second.of_type("error")] == [error]
        assert second.of_type("livekit_room_info") == []
        first.close()
        emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
        third = open_producer(emulator)
        third.send({"type": "livekit_join"})
        third.expect("livekit_room_info")


# ---------------------------------------------------------------- one transport per session


def test_an_offer_after_livekit_join_is_an_error_and_the_session_goes_on(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.send({"type": "livekit_join"})
    client.expect("livekit_room_info")
    client.send({"type": "offer", "sdp": "v=0\r\n"})
    client.send({"type": "ice-candidate", "candidate": None})
    client.send({"type": "livekit_join"})
    client.expect("error", 3)
    errors = [m["error"] for m in client.of_type("error")]
    assert errors[0].startswith("unexpected offer: this session already uses the livekit")
    assert errors[1].startswith("unexpected ice-candidate: this session already uses the livekit")
    assert errors[2].startswith("unexpected livekit_join: this session already joined")
    assert client.set_prompt("sketch")["success"] is True
    assert client.types().count("livekit_room_info") == 1


def test_livekit_join_after_an_offer_is_an_error(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.set_prompt("sketch")
    client.negotiate()
    client.send({"type": "livekit_join", "passthrough": True})
    error = client.expect("error")["error"]
    assert error.startswith("unexpected livekit_join: this session already uses the webrtc")
    session = _only_session(emulator)
    assert (session.transport, session.room_name) == ("webrtc", None)
    client.wait_frames(2)  # the legacy session carries on


def test_the_room_closes_with_the_session(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": True})
    info = client.expect("livekit_room_info")
    assert _validate(info).status_code == 200
    client.close()
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
    response = _validate(info)
    assert (response.status_code, response.text) == (404, "requested room does not exist")
    assert _watch(emulator, info["room_name"], emulator.api_key).status_code == 404


def test_failing_a_livekit_sessions_media_closes_its_room_and_ends_it(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": True})
    info = client.expect("livekit_room_info")
    assert emulator.fail_peer_connection() == 1
    assert client.wait_closed().code == 1011
    assert _validate(info).status_code == 404


# ---------------------------------------------------------------- legacy-only mode


def test_a_legacy_only_emulator_refuses_livekit_join_as_an_unknown_type(
    open_producer: Callable[..., RawClient],
) -> None:
    with Emulator(transports=("webrtc",)) as emulator:
        client = open_producer(emulator)
        client.send({"type": "livekit_join", "passthrough": True})
        # Word for word what an unknown type gets, so that an `auto` client falls back on it.
        client.send({"type": "no_such_type"})
        client.expect("error", 2)
        assert [m["error"] for m in client.of_type("error")] == [
            "unknown message type 'livekit_join'",
            "unknown message type 'no_such_type'",
        ]
        # The session goes on, and the legacy flow works on it.
        assert client.set_prompt("sketch")["success"] is True
        client.negotiate()
        client.wait_frames(2)
        assert _only_session(emulator).transport == "webrtc"


def test_transports_are_checked() -> None:
    for bad in ((), ("carrier-pigeon",)):
        with pytest.raises(ValueError, match="transports must name"):
            Emulator(transports=bad)
    assert Emulator().transports == {"webrtc", "livekit"}


# ---------------------------------------------------------------- watch-stream


@pytest.fixture
def live_room(emulator: Emulator, connect: Connect) -> dict[str, Any]:
    client = connect()
    client.send({"type": "livekit_join", "passthrough": True})
    return client.expect("livekit_room_info")


def test_watch_stream_gives_a_viewer_fresh_credentials(
    emulator: Emulator, live_room: dict[str, Any]
) -> None:
    for key in (emulator.api_key, emulator.create_token()):
        response = _watch(emulator, live_room["room_name"], key)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"livekit_url", "token", "room_name", "session_id"}
        assert body["livekit_url"] == live_room["livekit_url"]
        assert (body["room_name"], body["session_id"]) == (
            live_room["room_name"],
            live_room["session_id"],
        )
        assert body["token"] != live_room["token"]  # a viewer of its own
        assert _validate(body).status_code == 200


def test_watch_stream_answers_cross_origin_requests(
    emulator: Emulator, live_room: dict[str, Any]
) -> None:
    url = f"{emulator.url}/watch-stream/{live_room['room_name']}"
    origin = "http://page.example"
    preflight = requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    response = _watch(emulator, live_room["room_name"], emulator.api_key, Origin=origin)
    assert response.headers["Access-Control-Allow-Origin"] == origin
    refused = _watch(emulator, live_room["room_name"], "bad", Origin=origin)
    assert refused.headers["Access-Control-Allow-Origin"] == origin


def test_watch_stream_refuses_a_missing_bad_or_expired_key(
    emulator: Emulator, live_room: dict[str, Any]
) -> None:
    expiring = emulator.create_token(expires_in=1)
    issued = time.time()
    assert _watch(emulator, live_room["room_name"], None).status_code == 401
    bad = _watch(emulator, live_room["room_name"], "not-a-key")
    assert (bad.status_code, bad.json()) == (401, {"error": INVALID_API_KEY})
    wait_until(lambda: time.time() > issued + 1.2, timeout=10, what="the token's expiry")
    expired = _watch(emulator, live_room["room_name"], expiring)
    assert (expired.status_code, expired.json()) == (401, {"error": TOKEN_EXPIRED})


def test_watch_stream_of_an_unknown_room_is_not_found(
    emulator: Emulator, live_room: dict[str, Any]
) -> None:
    response = _watch(emulator, "decart-no-such-room", emulator.api_key)
    assert response.status_code == 404
    assert "no-such-room" in response.json()["error"]


def test_watch_stream_applies_a_client_tokens_allowed_models(
    emulator: Emulator, live_room: dict[str, Any]
) -> None:
    other_model = emulator.create_token(allowed_models=["lucy-2.5"])
    response = _watch(emulator, live_room["room_name"], other_model)
    assert response.status_code == 403
    assert "not allowed" in response.json()["error"]
    same_model = emulator.create_token(allowed_models=["lucy-2.1"])
    assert _watch(emulator, live_room["room_name"], same_model).status_code == 200
