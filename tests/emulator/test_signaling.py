"""The producer conversation: initial state, offer/answer, candidates, acks, generation events,
and strict handling of anything malformed."""

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

    # The answer's candidates are trickled too, and offer the loopback address only.
    candidate = client.expect("ice-candidate")["candidate"]
    assert candidate["candidate"].startswith("candidate:")
    assert isinstance(candidate["sdpMid"], str) and isinstance(candidate["sdpMLineIndex"], int)
    for message in client.of_type("ice-candidate"):
        address = message["candidate"]["candidate"].split()[4]
        assert ipaddress.ip_address(address).is_loopback

    client.expect("ready")
    client.expect("generation_started")
    client.wait_frames(3)
    assert client.expect("generation_tick", 1)["seconds"] == 1
    assert client.expect("generation_tick", 2)["seconds"] == 2
    assert types.index("answer") < client.types().index("generation_started")
    assert client.of_type("error") == []

    info = emulator.sessions()[0]
    assert info.session_id == session["session_id"]
    assert info.state == "generating"
    assert info.effect == "sketch"
    assert info.frames_in > 0 and info.frames_out > 0

    client.close()
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_an_offer_before_the_initial_state_is_refused_but_the_session_stays_usable(
    emulator: Emulator, connect: Connect
) -> None:
    client = connect()
    client.send({"type": "offer", "sdp": "v=0\r\n"})
    error = client.expect("error")
    assert "initial state" in error["error"]
    assert emulator.sessions()[0].state == "waiting_state"

    assert client.set_prompt("warm sunset")["success"] is True
    assert emulator.sessions()[0].state == "negotiating"
    client.negotiate()
    client.expect("session_id")
    assert client.closed is None


def test_a_failed_initial_state_keeps_the_offer_gated(connect: Connect) -> None:
    client = connect()
    ack = client.set_prompt("   ")
    assert ack["success"] is False and ack["prompt"] == "   "
    assert "empty or blank" in ack["error"]
    client.send({"type": "offer", "sdp": "v=0\r\n"})
    assert "initial state" in client.expect("error")["error"]

    ack = client.set_image("not base64 at all!")
    assert ack["success"] is False
    client.send({"type": "offer", "sdp": "v=0\r\n"})
    assert "initial state" in client.expect("error", 2)["error"]


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
        (json.dumps({"type": "ice-candidate", "candidate": "x"}), "candidate"),
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
