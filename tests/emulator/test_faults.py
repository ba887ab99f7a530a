"""Fault injection, in-process and over the admin HTTP API: each fault does what it says, to
the sessions it names, until cleared."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from _support.pictures import pattern
from rawclient import INPUT_SIZE, RawClient, http

from decart_sync._protocol import CAPACITY_ERROR
from decart_sync.emulator import Emulator, UnknownSession

Connect = Callable[..., RawClient]


def _generating(connect: Connect, prompt: str = "sketch") -> RawClient:
    client = connect()
    client.set_prompt(prompt)
    client.negotiate()
    client.wait_frames(3)
    return client


def _session_id(client: RawClient) -> str:
    return str(client.expect("session_id")["session_id"])


# --------------------------------------------------------------------------- in-process


def test_drop_websocket_cuts_one_session_without_a_goodbye(
    emulator: Emulator, connect: Connect
) -> None:
    doomed, spared = connect(), connect()
    doomed.set_prompt("one")
    spared.set_prompt("two")
    doomed.negotiate()
    target = _session_id(doomed)

    assert emulator.drop_websocket(target) == 1
    assert doomed.wait_closed().code is None  # no closing handshake
    assert doomed.of_type("generation_ended") == []
    emulator.wait_for(lambda emu: [s.prompt for s in emu.sessions()] == ["two"], timeout=10)
    assert spared.set_prompt("still here")["success"]

    with pytest.raises(UnknownSession):
        emulator.drop_websocket("no-such-session")


def test_fail_peer_connection_ends_the_session(emulator: Emulator, connect: Connect) -> None:
    client = _generating(connect)
    assert emulator.fail_peer_connection() == 1
    client.wait(lambda: client.connection_state in ("closed", "failed"), what="the pc to fail")
    assert client.wait_closed().code == 1011
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_delayed_acks_arrive_late(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    emulator.delay_acks(1.0)
    started = time.monotonic()
    assert client.set_prompt("slow")["success"]
    assert time.monotonic() - started >= 0.9
    # The session kept reading meanwhile; the state was in effect before the ack.
    assert emulator.sessions()[0].prompt == "slow"

    emulator.clear_faults()
    started = time.monotonic()
    assert client.set_prompt("fast")["prompt"] == "fast"
    assert time.monotonic() - started < 0.9


def test_withheld_acks_are_never_sent(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    emulator.withhold_acks()
    client.send({"type": "prompt", "prompt": "lost", "enhance_prompt": True})
    emulator.wait_for(lambda emu: emu.sessions()[0].prompt == "lost", timeout=10)
    emulator.withhold_acks(False)
    assert client.set_prompt("found")["prompt"] == "found"
    # Messages are handled in order: had the first ack been sent, it would have come first.
    assert [ack["prompt"] for ack in client.of_type("prompt_ack")] == ["found"]


def test_reject_next_rejects_that_many_connections(emulator: Emulator, connect: Connect) -> None:
    emulator.reject_next(2, "Permission denied: maintenance")
    for _ in range(2):
        client = connect()
        assert client.expect("error")["error"] == "Permission denied: maintenance"
        assert client.wait_closed().code == 1008
    assert connect().set_prompt("third time lucky")["success"]

    emulator.reject_next(1)  # the capacity error by default
    client = connect()
    assert client.expect("error")["error"] == CAPACITY_ERROR
    assert client.wait_closed().code == 1013
    with pytest.raises(ValueError):
        emulator.reject_next(-1)


def test_freeze_video_repeats_the_last_frame(emulator: Emulator, connect: Connect) -> None:
    picture = pattern(*INPUT_SIZE)
    client = connect()
    client.set_prompt("negative")
    client.negotiate(picture)

    def looks_like(target: np.ndarray) -> Callable[[], bool]:
        def check() -> bool:
            if client.latest_frame is None:
                return False
            received = client.latest_rgb(INPUT_SIZE).astype(np.int16)
            return bool(np.abs(received - target.astype(np.int16)).mean() < 12)

        return check

    client.wait(looks_like(255 - picture), what="the negative")
    assert emulator.freeze_video(30) == 1
    assert client.set_image(None, prompt=None)["success"]  # would show the picture itself
    client.wait_frames(8)  # frames keep coming ...
    assert looks_like(255 - picture)()  # ... with the old content
    assert emulator.sessions()[0].effect == "passthrough"

    emulator.clear_faults()  # unfreezes
    client.wait(looks_like(picture), what="the picture after the freeze")


def test_end_session_sends_generation_ended_with_the_reason(
    emulator: Emulator, connect: Connect
) -> None:
    client = _generating(connect)
    emulator.wait_for(lambda emu: emu.sessions()[0].seconds >= 1, timeout=10)
    assert emulator.end_session() == 1
    ended = client.expect("generation_ended")
    assert ended["reason"] == "insufficient_credits" and ended["seconds"] >= 1
    assert client.wait_closed().code == 1000
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_end_session_takes_only_the_documented_reasons(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="reason must be one of disconnect, timeout"):
        emulator.end_session("server_shutdown")
    assert _admin(emulator, "faults/end-session", {"reason": "bored"})[0] == 400


def test_restart_drops_every_session_and_listens_on_the_same_port(
    emulator: Emulator, connect: Connect
) -> None:
    port = emulator.port
    client = _generating(connect)
    emulator.restart()
    assert client.wait_closed().code is None
    assert emulator.port == port and emulator.sessions() == []
    assert connect().set_prompt("after the restart")["success"]


# --------------------------------------------------------------------------- admin HTTP API


def _admin(
    emulator: Emulator, path: str, body: object = None, token: str | None = None
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token or emulator.admin_token}"}
    method = "GET" if path == "sessions" else "POST"
    status, reply = http(method, f"{emulator.url}/_emulator/{path}", body, headers)
    return status, reply


def test_the_admin_api_needs_the_admin_token(emulator: Emulator) -> None:
    assert _admin(emulator, "sessions", token="wrong")[0] == 401
    status, _ = http("GET", f"{emulator.url}/_emulator/sessions")
    assert status == 401
    status, _ = http(
        "POST",
        f"{emulator.url}/_emulator/faults/clear",
        {},
        {"Authorization": f"Bearer {emulator.api_key}"},
    )
    assert status == 401


def test_the_admin_api_injects_faults(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.set_prompt("over http")
    status, reply = _admin(emulator, "sessions")
    assert status == 200
    sessions = reply["sessions"]
    assert isinstance(sessions, list) and sessions[0]["prompt"] == "over http"
    sid = sessions[0]["session_id"]

    assert _admin(emulator, "faults/delay-acks", {"seconds": "soon"})[0] == 400
    assert _admin(emulator, "faults/reject-next", {"n": -2})[0] == 400
    assert _admin(emulator, "faults/freeze-video", {})[0] == 400
    assert _admin(emulator, "faults/drop-websocket", {"session_id": "nope"})[0] == 404
    assert _admin(emulator, "faults/withhold-acks", [1])[0] == 400
    assert _admin(emulator, "faults/trickle-candidates", {"on": "yes"})[0] == 400

    assert _admin(emulator, "faults/reject-next", {"n": 1}) == (200, {"ok": True})
    rejected = connect()
    assert rejected.expect("error")["error"] == CAPACITY_ERROR

    assert _admin(emulator, "faults/drop-websocket", {"session_id": sid}) == (
        200,
        {"ok": True, "sessions": 1},
    )
    assert client.wait_closed().code is None

    assert _admin(emulator, "faults/trickle-candidates", {}) == (200, {"ok": True})
    trickled = connect()
    trickled.set_prompt("candidates please")
    trickled.negotiate()
    assert trickled.expect("ice-candidate")["candidate"]["candidate"].startswith("candidate:")
    assert _admin(emulator, "faults/clear", {})[0] == 200


def test_the_admin_api_restarts_the_server(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    client.set_prompt("before")
    assert _admin(emulator, "restart") == (200, {"ok": True, "restarting": True})
    assert client.wait_closed().code is None

    def serving_again() -> bool:
        try:
            return http("GET", emulator.url + "/health")[1]["restarts"] == 1
        except OSError:  # refused while the listener is down
            return False

    emulator.wait_for(lambda emu: serving_again(), timeout=10)
    assert connect().set_prompt("after")["success"]
