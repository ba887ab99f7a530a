"""The emulator's LiveKit rooms, joined with the real ``livekit`` SDK (protocol.md section 9).

The SDK runs in a private network namespace (libwebrtc connects nowhere else here), in
``livekit_driver.py``, against a ``RoomHost`` fed by a real frame pipeline; each scenario runs
once and the tests below read what it saw. Until the control channel hands out rooms, the
credentials come from the host directly, as ``livekit_join`` and ``/watch-stream`` will.
The HTTP side of admission needs no libwebrtc and is tested in this process.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import requests
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket
from livekit.protocol import models, rtc
from livekit_server import MODEL, RoomServer

from decart_sync._ice import host_addresses
from decart_sync._receivers import MarkerJitterBuffer
from decart_sync.emulator import Emulator
from decart_sync.emulator.livekit import INFERENCE_IDENTITY, RoomTicket
from decart_sync.emulator.livekit.grants import AccessTokens
from decart_sync.testing import require_netns, run_in_netns

T = TypeVar("T")

DRIVER = Path(__file__).with_name("livekit_driver.py")
# A scenario connects twice or thrice and waits for frames: generous on a busy machine.
SCENARIO_TIMEOUT = 240.0
# The driver's thresholds (mean absolute difference 0-255 to the picture sent).
PASSTHROUGH_TOLERANCE = 12.0
EFFECT_MINIMUM = 30.0
# Another emulator's secret (as long as a real one, or PyJWT warns).
OTHER_SECRET = "another-emulators-secret-0123456789abcdef"


def run_scenario(name: str) -> dict[str, Any]:
    require_netns()
    result = run_in_netns(
        [sys.executable, str(DRIVER), name], timeout=SCENARIO_TIMEOUT, cwd=str(DRIVER.parent)
    )
    assert result.returncode == 0, f"the {name} scenario failed:\n{result.stderr[-6000:]}"
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module")
def media() -> dict[str, Any]:
    return run_scenario("media")


# ---------------------------------------------------------------- through the SDK


@pytest.mark.slow
def test_a_producer_joins_publishes_and_receives_the_inference_servers_video(
    media: dict[str, Any],
) -> None:
    assert media["remote_identities"] == [INFERENCE_IDENTITY]
    assert media["publisher"] == INFERENCE_IDENTITY
    assert media["frames"] >= 60
    assert media["size"] == [MODEL.width, MODEL.height]
    # Its camera reached the model: the output is its picture, untouched by passthrough.
    assert media["frames_in"] > 0
    assert media["passthrough_difference"] < PASSTHROUGH_TOLERANCE


@pytest.mark.slow
def test_a_prompt_change_shows_in_the_pixels_the_producer_receives(
    media: dict[str, Any],
) -> None:
    assert media["effect_difference"] > EFFECT_MINIMUM


@pytest.mark.slow
def test_a_viewer_receives_the_same_frames_and_cannot_publish(media: dict[str, Any]) -> None:
    assert media["viewer_publisher"] == INFERENCE_IDENTITY
    assert media["viewer_frames"] >= 30
    assert media["viewer_vs_producer"] < PASSTHROUGH_TOLERANCE
    assert media["viewer_can_publish"] is False
    assert "timed out" in media["viewer_publish_error"]


@pytest.mark.slow
def test_the_sdk_joins_with_one_peer_connection_and_the_legacy_join_still_works(
    media: dict[str, Any],
) -> None:
    # The producer took the SDK's default (/rtc/v1), the viewer asked for /rtc; both got video.
    producer = media["producer_identity"]
    assert media["connections"][producer] == 1
    [viewer] = [identity for identity in media["connections"] if identity != producer]
    assert media["connections"][viewer] == 2


@pytest.mark.slow
def test_the_sdk_is_refused_forged_expired_and_foreign_tokens() -> None:
    refused = run_scenario("tokens")
    assert "401" in refused["bad_signature"]
    assert "Signature verification failed" in refused["bad_signature"]
    assert "401" in refused["expired"] and "expired" in refused["expired"]
    assert "404" in refused["wrong_room"] and "room does not exist" in refused["wrong_room"]
    assert refused["genuine"] is True


# ---------------------------------------------------------------- admission over HTTP


@pytest.fixture(scope="module")
def server() -> Iterator[RoomServer]:
    with RoomServer() as running:
        yield running


def _validate(server: RoomServer, token: str | None, **headers: str) -> requests.Response:
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    return requests.get(
        f"http://127.0.0.1:{server.port}/livekit/rtc/validate", headers=headers, timeout=10
    )


def test_a_tickets_token_is_valid_for_its_room(server: RoomServer) -> None:
    assert server.ticket is not None
    assert server.ticket.livekit_url == f"ws://127.0.0.1:{server.port}/livekit"
    response = _validate(server, server.ticket.token)
    assert (response.status_code, response.text) == (200, "success")


def test_a_token_in_the_query_string_counts_too(server: RoomServer) -> None:
    assert server.ticket is not None
    response = requests.get(
        f"http://127.0.0.1:{server.port}/livekit/rtc/validate",
        params={"access_token": server.ticket.token},
        timeout=10,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("missing", 401, "permissions denied"),
        ("forged", 401, "Signature verification failed"),
        ("expired", 401, "Signature has expired"),
        ("foreign room", 404, "requested room does not exist"),
        ("not bearer", 401, "Must start with Bearer"),
    ],
)
def test_bad_tokens_get_livekits_statuses(
    server: RoomServer, case: str, status: int, text: str
) -> None:
    assert server.ticket is not None
    room = server.ticket.room_name
    headers = {}
    token: str | None
    if case == "missing":
        token = None
    elif case == "forged":
        token = AccessTokens(secret=OTHER_SECRET).mint(room, "someone", can_publish=True)
    elif case == "expired":
        token = server.mint(room, "someone", ttl=-600)  # beyond LiveKit's one-minute leeway
    elif case == "foreign room":
        token = server.mint("another-room", "someone", ttl=600)
    else:
        token, headers = None, {"Authorization": f"Token {server.ticket.token}"}
    response = _validate(server, token, **headers)
    assert response.status_code == status
    assert text in response.text


def test_a_refused_join_gets_its_status_before_any_websocket(server: RoomServer) -> None:
    response = requests.get(
        f"http://127.0.0.1:{server.port}/livekit/rtc",
        headers={"Authorization": "Bearer not-a-token"},
        timeout=10,
    )
    assert response.status_code == 401


def test_a_single_peer_connection_join_is_checked_before_any_websocket(
    server: RoomServer,
) -> None:
    assert server.ticket is not None
    url = f"http://127.0.0.1:{server.port}/livekit/rtc/v1"
    unsigned = requests.get(url, params={"join_request": _join_request(None)}, timeout=10)
    assert (unsigned.status_code, unsigned.text) == (401, "permissions denied")
    headers = {"Authorization": f"Bearer {server.ticket.token}"}
    garbled = requests.get(
        url, params={"join_request": "%%not base64"}, headers=headers, timeout=10
    )
    assert garbled.status_code == 400 and "join_request does not parse" in garbled.text
    validate = requests.get(f"{url}/validate", headers=headers, timeout=10)
    assert (validate.status_code, validate.text) == (200, "success")


def test_viewer_credentials_exist_only_for_open_rooms() -> None:
    with RoomServer(session_id="short-lived") as server:
        assert server.ticket is not None
        viewer = server.viewer_ticket()
        assert (viewer.room_name, viewer.session_id) == ("decart-short-lived", "short-lived")
        assert viewer.token != server.ticket.token
        assert viewer.token not in repr(viewer)
        assert _validate(server, viewer.token).status_code == 200
        room = server.ticket.room_name
        host = server.host
        assert host is not None

        async def close() -> None:
            await host.close_room(room)

        server.call(close)
        with pytest.raises(KeyError):
            server.viewer_ticket()
        # A token for a room that closed is a token for a room that does not exist.
        assert _validate(server, viewer.token).status_code == 404


# ---------------------------------------------------------------- what libwebrtc sends


def _packet(sequence: int, timestamp: int, data: bytes, marker: bool) -> RtpPacket:
    packet = RtpPacket(sequence_number=sequence, timestamp=timestamp, marker=marker)
    packet._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader sets
    return packet


def test_padding_only_packets_never_reach_the_decoder_as_a_frame() -> None:
    # libwebrtc pads on the media stream when no RTX was negotiated (the livekit SDK offers
    # none); an empty frame would be an end-of-stream packet to FFmpeg's decoder.
    buffer = MarkerJitterBuffer(64)
    released: list[JitterFrame] = []
    for packet in (
        _packet(1, 1000, b"frame-1", marker=True),
        _packet(2, 1000, b"", marker=False),  # padding, the last frame's timestamp
        _packet(3, 4000, b"", marker=False),  # padding with a timestamp of its own
        _packet(4, 7000, b"frame-2", marker=True),
    ):
        _, frame = buffer.add(packet)
        if frame is not None:
            released.append(frame)
    assert [frame.data for frame in released] == [b"frame-1", b"frame-2"]


# ---------------------------------------------------------------- the signal conversation


class SignalClient:
    """A raw signal connection: protobuf frames over a WebSocket, no media."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def receive(self, kind: str, seen: list[str] | None = None) -> Any:
        """The next response of ``kind`` (skipping others, e.g. the subscriber offer; ``seen``
        collects the kind of every response read)."""
        while True:
            frame = await self.ws.receive(timeout=10)
            assert frame.type == aiohttp.WSMsgType.BINARY, f"socket ended: {frame}"
            response = rtc.SignalResponse.FromString(frame.data)
            which = response.WhichOneof("message")
            if seen is not None:
                seen.append(which)
            if which == kind:
                return getattr(response, kind)

    async def send(self, **message: Any) -> None:
        await self.ws.send_bytes(rtc.SignalRequest(**message).SerializeToString())


async def _converse(url: str, token: str, talk: Callable[[SignalClient], Awaitable[T]]) -> T:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/rtc", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        return await talk(SignalClient(ws))


def _join_request(offer: str | None) -> str:
    """A ``join_request`` parameter as the ``livekit`` SDK writes one: gzipped."""
    request = rtc.JoinRequest()
    if offer is not None:
        request.publisher_offer.CopyFrom(rtc.SessionDescription(type="offer", sdp=offer, id=1))
    wrapped = rtc.WrappedJoinRequest(
        join_request=gzip.compress(request.SerializeToString()),
        compression=rtc.WrappedJoinRequest.Compression.GZIP,
    )
    return base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()


async def _single_peer_offer(videos: int) -> tuple[RTCPeerConnection, str]:
    """An offer shaped like the SDK's first one: a data channel, one recvonly audio m-line and
    ``videos`` recvonly video m-lines. No candidates are gathered (none is needed here)."""
    pc = RTCPeerConnection()
    pc.createDataChannel("_reliable")
    pc.addTransceiver("audio", direction="recvonly")
    for _ in range(videos):
        pc.addTransceiver("video", direction="recvonly")
    with host_addresses([]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


def _media_sections(sdp: str) -> dict[str, str]:
    """Each m-line's mid and the lines that follow it, up to the next m-line."""
    sections: dict[str, str] = {}
    for block in sdp.split("m=")[1:]:
        mid = next(line[6:] for line in block.splitlines() if line.startswith("a=mid:"))
        sections[mid.strip()] = block
    return sections


async def _converse_single_peer(
    ticket: RoomTicket, videos: int, talk: Callable[[SignalClient], Awaitable[T]]
) -> tuple[T, list[str]]:
    """Join in single-peer-connection mode with an offer of ``videos`` recvonly video m-lines,
    let ``talk`` speak, and return what it returned and the mids of those m-lines."""
    pc, offer = await _single_peer_offer(videos)
    try:
        url = f"{ticket.livekit_url}/rtc/v1"
        headers = {"Authorization": f"Bearer {ticket.token}"}
        params = {"join_request": _join_request(offer)}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, headers=headers, params=params) as ws,
        ):
            said = await talk(SignalClient(ws))
        return said, [t.mid for t in pc.getTransceivers() if t.kind == "video" and t.mid]
    finally:
        await pc.close()


def test_a_single_peer_connection_join_gets_its_offer_answered_with_the_model_video(
    server: RoomServer,
) -> None:
    assert server.ticket is not None
    kinds: list[str] = []

    async def talk(client: SignalClient) -> tuple[Any, Any, Any]:
        join = await client.receive("join", seen=kinds)
        answer = await client.receive("answer", seen=kinds)
        await client.send(ping_req=rtc.Ping(timestamp=7))
        pong = await client.receive("pong_resp", seen=kinds)
        await client.send(leave=rtc.LeaveRequest())
        return join, answer, pong

    (join, answer, pong), videos = asyncio.run(_converse_single_peer(server.ticket, 2, talk))
    [inference] = join.other_participants
    [track] = inference.tracks
    # The model's video goes on the first recvonly video m-line, named there by its mid and in
    # its stream id; the other video m-line stays unused.
    first_video = videos[0]
    assert answer.type == "answer" and answer.id == 1
    assert dict(answer.mid_to_track_id) == {first_video: track.sid}
    sections = _media_sections(answer.sdp)
    assert "a=sendonly" in sections[first_video]
    assert f"a=msid:{inference.sid}|{track.sid} " in sections[first_video]
    others = [block for mid, block in sections.items() if mid != first_video]
    assert all("a=sendonly" not in block for block in others)
    # One connection: the server never offers, and answers in order.
    assert "offer" not in kinds and pong.last_ping_timestamp == 7


def test_an_offer_with_no_video_line_to_send_on_gets_a_media_sections_requirement(
    server: RoomServer,
) -> None:
    assert server.ticket is not None

    async def talk(client: SignalClient) -> tuple[Any, Any]:
        answer = await client.receive("answer")
        requirement = await client.receive("media_sections_requirement")
        await client.send(leave=rtc.LeaveRequest())
        return answer, requirement

    (answer, requirement), _ = asyncio.run(_converse_single_peer(server.ticket, 0, talk))
    assert dict(answer.mid_to_track_id) == {}
    assert (requirement.num_videos, requirement.num_audios) == (1, 0)


def test_the_join_response_describes_the_room_and_the_inference_servers_track(
    server: RoomServer,
) -> None:
    assert server.ticket is not None
    ticket = server.ticket

    async def talk(client: SignalClient) -> tuple[Any, Any, Any]:
        join = await client.receive("join")
        offer = await client.receive("offer")
        await client.send(ping_req=rtc.Ping(timestamp=1234))
        pong = await client.receive("pong_resp")
        await client.send(leave=rtc.LeaveRequest())
        return join, offer, pong

    join, offer, pong = asyncio.run(_converse(ticket.livekit_url, ticket.token, talk))
    assert join.room.name == ticket.room_name and join.room.sid.startswith("RM_")
    assert join.participant.identity == f"client-{ticket.session_id}"
    assert join.participant.permission.can_publish
    assert join.subscriber_primary
    assert (join.ping_interval, join.ping_timeout) == (5, 15)
    [inference] = join.other_participants
    assert inference.identity == INFERENCE_IDENTITY and inference.sid.startswith("PA_")
    [track] = inference.tracks
    assert track.sid.startswith("TR_") and track.type == models.TrackType.VIDEO
    assert (track.width, track.height) == (MODEL.width, MODEL.height)
    # The subscriber offer streams that track under "<participant sid>|<track sid>".
    assert offer.type == "offer" and f"a=msid:{inference.sid}|{track.sid} " in offer.sdp
    assert pong.last_ping_timestamp == 1234


def test_a_viewer_is_told_it_may_not_publish_and_the_producer_sees_it_come_and_go() -> None:
    with RoomServer(session_id="watched") as server:
        assert server.ticket is not None
        producer, viewer = server.ticket, server.viewer_ticket()

        async def scenario() -> tuple[Any, Any, Any, Any]:
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {producer.token}"}
                async with session.ws_connect(f"{producer.livekit_url}/rtc", headers=headers) as ws:
                    watching = SignalClient(ws)
                    await watching.receive("join")

                    async def as_viewer(client: SignalClient) -> tuple[Any, Any]:
                        join = await client.receive("join")
                        request = rtc.AddTrackRequest(cid="cam", type=models.TrackType.VIDEO)
                        await client.send(add_track=request)
                        return join, await client.receive("request_response")

                    join, refusal = await _converse(viewer.livekit_url, viewer.token, as_viewer)
                    arrived = await watching.receive("update")
                    left = await watching.receive("update")
            return join, refusal, arrived, left

        join, refusal, arrived, left = asyncio.run(scenario())
    assert not join.participant.permission.can_publish
    assert refusal.reason == rtc.RequestResponse.Reason.NOT_ALLOWED
    assert refusal.add_track.cid == "cam"
    [newcomer] = arrived.participants
    assert newcomer.identity == join.participant.identity
    [gone] = left.participants
    assert gone.state == models.ParticipantInfo.State.DISCONNECTED


def test_closing_the_room_sends_everyone_away() -> None:
    with RoomServer(session_id="ending") as server:
        assert server.ticket is not None and server.host is not None
        ticket, host = server.ticket, server.host

        async def talk(client: SignalClient) -> Any:
            await client.receive("join")

            async def close() -> None:
                await host.close_room(ticket.room_name)

            server.submit(close)
            return await client.receive("leave")

        leave = asyncio.run(_converse(ticket.livekit_url, ticket.token, talk))
    assert leave.reason == models.DisconnectReason.ROOM_DELETED
    assert leave.action == rtc.LeaveRequest.Action.DISCONNECT


def test_the_emulator_serves_its_rooms_under_livekit(emulator: Emulator) -> None:
    base = f"{emulator.url}/livekit/rtc"
    refused = requests.get(f"{base}/validate", timeout=10)
    assert (refused.status_code, refused.text) == (401, "permissions denied")
    assert requests.get(f"{base}/v1", timeout=10).status_code == 401
