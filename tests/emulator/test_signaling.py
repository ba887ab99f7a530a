"""The producer conversation: initial state, offer/answer, candidates, acks, generation events,
and strict handling of anything malformed. What Decart's official clients send is accepted
silently: a browser's trickled candidates ending in ``null``, an old JS client's offer before any
state; and the server sends neither ``ready`` nor ``ice-candidate`` (protocol section 2)."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
from collections.abc import Callable

import pytest
from rawclient import RawClient, solid_png

from decart_sync.emulator import Emulator
from decart_sync.emulator.effects import MAX_IMAGE_BYTES

Connect = Callable[..., RawClient]


def _png_b64(rgb: tuple[int, int, int] = (0, 200, 0)) -> str:
    return base64.b64encode(solid_png(rgb)).decode()


def test_a_session_runs_from_prompt_to_generation_ticks(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    ack = client.set_prompt("a pencil sketch of a cat")
    assert ack == {
        "type": "prompt_ack",
        "prompt": "a pencil sketch of a cat",
        "success": True,
        "error": None,
    }
    answer = client.negotiate()
    assert answer["sdp"].startswith("v=0")

    # session_id comes first and points at this server, so a subscribe token made from it works.
    types = client.types()
    assert types.index("session_id") < types.index("answer")
    session = client.expect("session_id")
    assert len(session["session_id"]) == 32 and int(session["session_id"], 16) >= 0
    assert session["server_ip"] == "127.0.0.1"
    assert session["server_port"] == emulator.port

    # The answer's SDP carries the candidates, on the loopback address only.
    candidates = [line for line in answer["sdp"].splitlines() if line.startswith("a=candidate:")]
    assert candidates
    for line in candidates:
        assert ipaddress.ip_address(line.split()[4]).is_loopback

    client.expect("generation_started")
    client.wait_frames(3)
    assert client.expect("generation_tick", 1)["seconds"] == 1
    assert client.expect("generation_tick", 2)["seconds"] == 2
    assert types.index("answer") < client.types().index("generation_started")
    # Neither is sent: Decart's JS client answers `ready` with a second offer, and its Python
    # client fails on a server `ice-candidate`.
    assert client.of_type("ready") == client.of_type("ice-candidate") == []
    assert client.of_type("error") == []

    info = emulator.sessions()[0]
    assert info.session_id == session["session_id"]
    assert info.state == "generating"
    assert info.effect == "sketch"
    assert info.frames_in > 0 and info.frames_out > 0

    client.close()
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_a_browser_client_without_initial_state_gets_passthrough_then_its_prompt(
    emulator: Emulator, connect: Connect
) -> None:
    # What @decartai/sdk <= 0.0.47 sends: the offer first, no state; its candidates trickled
    # as RTCIceCandidate.toJSON() with usernameFragment, then null; the prompt once connected.
    client = connect()
    assert emulator.sessions()[0].state == "waiting_state"
    client.negotiate(browser=True)
    client.expect("session_id")
    client.wait_frames(3)
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image, info.effect) == (None, False, "passthrough")
    assert info.candidates_received >= 1
    assert client.set_prompt("noir")["success"] is True
    assert emulator.sessions()[0].effect == "noir"
    client.expect("generation_tick")
    assert client.of_type("error") == client.of_type("ready") == []
    assert client.of_type("ice-candidate") == []
    assert client.closed is None


def test_candidates_without_mid_or_line_index_are_accepted(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.set_prompt("sepia")
    offer_sdp = client.media.run(client._make_offer(None, False, None))
    client.send({"type": "offer", "sdp": offer_sdp})
    client._send_own_candidates(browser=True, unplaced=True)
    client.media.run(client._apply_answer(client.expect("answer")["sdp"]))
    client.wait_frames(2)
    assert client.of_type("error") == []
    assert emulator.sessions()[0].candidates_received >= 1


def test_an_offer_after_a_failed_initial_state_means_passthrough(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    ack = client.set_prompt("   ")
    assert ack["success"] is False and ack["prompt"] == "   "
    assert "empty or blank" in ack["error"]
    assert client.set_image("not base64 at all!")["success"] is False
    client.negotiate()
    client.wait_frames(2)
    assert emulator.sessions()[0].effect == "passthrough"
    assert client.of_type("error") == []


def test_the_trickle_fault_sends_the_answer_candidates_as_messages(
    emulator: Emulator, connect: Connect
) -> None:
    emulator.trickle_candidates()
    client = connect()
    client.set_prompt("blur")
    client.negotiate()
    candidate = client.expect("ice-candidate")["candidate"]
    assert candidate["candidate"].startswith("candidate:")
    assert isinstance(candidate["sdpMid"], str) and isinstance(candidate["sdpMLineIndex"], int)
    client.wait_frames(2)

    emulator.clear_faults()
    quiet = connect()
    quiet.set_prompt("blur")
    quiet.negotiate()
    quiet.wait_frames(2)
    assert quiet.of_type("ice-candidate") == []


def test_passthrough_initial_state_is_accepted(emulator: Emulator, connect: Connect) -> None:
    client = connect()
    assert client.set_image(None, prompt=None) == {
        "type": "set_image_ack",
        "success": True,
        "error": None,
    }
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image, info.effect) == (None, False, "passthrough")
    assert info.state == "negotiating"


def test_set_image_replaces_the_image_and_keeps_an_omitted_prompt(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()

    def state() -> tuple[str | None, bool, bool, str]:
        info = emulator.sessions()[0]
        return info.prompt, info.enhance, info.has_image, info.effect

    # Each ack comes only once the state is in effect, so the snapshot right after shows it.
    assert client.set_prompt("neon city", enhance=False)["success"]
    assert state() == ("neon city", False, False, "neon")

    assert client.set_image(_png_b64())["success"]  # prompt and enhance omitted: kept
    assert state()[:3] == ("neon city", False, True)

    assert client.set_image(None)["success"]  # image cleared, prompt kept
    assert state() == ("neon city", False, False, "neon")

    assert client.set_image(_png_b64(), prompt="negative", enhance_prompt=True)["success"]
    assert state()[:3] == ("negative", True, True)

    assert client.set_prompt("sepia")["success"]  # a prompt keeps the image
    assert state()[:3] == ("sepia", True, True)

    assert client.set_image(None, prompt=None)["success"]
    assert state() == (None, True, False, "passthrough")


@pytest.mark.parametrize(
    ("image_data", "expected"),
    [
        ("!!!not-base64!!!", "base64"),
        ("", "empty"),
        (base64.b64encode(b"this is not an image, just text").decode(), "invalid image"),
        (base64.b64encode(solid_png((1, 2, 3)))[:-12].decode() + "A" * 8, "invalid image"),
    ],
    ids=["not-base64", "empty", "not-an-image", "truncated"],
)
def test_bad_images_get_a_failed_ack(connect: Connect, image_data: str, expected: str) -> None:
    client = connect()
    ack = client.set_image(image_data)
    assert ack["success"] is False
    assert expected in ack["error"]
    assert client.set_prompt("still fine")["success"] is True
    assert client.closed is None


def test_an_image_over_the_limit_gets_a_failed_ack(connect: Connect) -> None:
    client = connect()
    too_big = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1024)).decode()
    ack = client.set_image(too_big)
    assert ack["success"] is False
    assert "too large" in ack["error"]
    assert client.set_prompt("still fine")["success"] is True


def test_an_oversized_message_closes_the_websocket_with_1009(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.set_prompt("x")
    # The server stops reading at the frame header, so our send may be cut off midway.
    with contextlib.suppress(OSError):
        client.send_raw(json.dumps({"type": "prompt", "prompt": "y" * (17 * 1024 * 1024)}))
    # 1009 (message too big), unless the reset beat the close frame to our reader.
    assert client.wait_closed().code in (1009, None)
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        (json.dumps({"prompt": "no type"}), "'type'"),
        (json.dumps({"type": "dance"}), "unknown message type 'dance'"),
        (json.dumps({"type": "prompt", "prompt": 5}), "'prompt' field 'prompt' must be a string"),
        (json.dumps({"type": "prompt"}), "missing field 'prompt'"),
        (
            json.dumps({"type": "prompt", "prompt": "x", "enhance_prompt": "yes"}),
            "enhance_prompt",
        ),
        (json.dumps({"type": "set_image"}), "image_data"),
        (json.dumps({"type": "set_image", "image_data": 12}), "image_data"),
        (json.dumps({"type": "set_image", "image_data": None, "prompt": 3}), "'prompt'"),
        (json.dumps({"type": "offer", "sdp": None}), "sdp"),
        (json.dumps({"type": "ice-candidate", "candidate": "x"}), "an object or null"),
        (json.dumps({"type": "ice-candidate"}), "missing field 'candidate'"),
        (
            json.dumps(
                {
                    "type": "ice-candidate",
                    "candidate": {
                        "candidate": "candidate:1 1 udp",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    },
                }
            ),
            "invalid ICE candidate",
        ),
        (
            json.dumps({"type": "ice-candidate", "candidate": {"candidate": "x", "sdpMid": 0}}),
            "sdpMLineIndex",
        ),
    ],
)
def test_malformed_messages_get_an_error_and_the_session_carries_on(
    emulator: Emulator, connect: Connect, payload: str, expected: str
) -> None:
    client = connect()
    client.send_raw(payload)
    assert expected in client.expect("error")["error"]
    assert client.set_prompt("still here")["success"] is True
    assert client.closed is None
    assert emulator.sessions()[0].prompt == "still here"


def test_binary_frames_get_an_error(connect: Connect) -> None:
    client = connect()
    client.send_raw(b"\x00\x01binary")
    assert "binary" in client.expect("error")["error"]
    assert client.set_prompt("still here")["success"] is True


def test_an_unusable_offer_gets_an_error_and_a_later_good_one_works(connect: Connect) -> None:
    client = connect()
    client.set_prompt("cartoon")
    client.send({"type": "offer", "sdp": "this is not SDP"})
    assert client.expect("error")["error"].startswith("invalid offer")
    client.negotiate()
    client.expect("session_id")
    client.wait_frames(2)


def test_a_second_offer_is_refused_and_video_keeps_flowing(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.set_prompt("cold winter")
    client.negotiate()
    client.wait_frames(2)
    client.send({"type": "offer", "sdp": client.pc.localDescription.sdp})  # type: ignore[union-attr]
    assert "already has a peer connection" in client.expect("error")["error"]
    client.wait_frames(5)
    assert emulator.sessions()[0].state == "generating"


def test_candidates_sent_before_the_offer_are_queued(connect: Connect) -> None:
    client = connect()
    client.set_prompt("blur")
    offer_sdp = client.media.run(client._make_offer(None, False, None))
    client._send_own_candidates()  # before the offer: the server must keep them
    client.send({"type": "offer", "sdp": offer_sdp})
    client.media.run(client._apply_answer(client.expect("answer")["sdp"]))
    client.wait_frames(2)
    assert client.of_type("error") == []
