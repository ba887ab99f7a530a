"""Drives the emulator's LiveKit rooms with the real ``livekit`` SDK; run inside a private network
namespace (``decart_sync.testing.run_in_netns``), since libwebrtc connects nowhere else here.

``python livekit_driver.py SCENARIO`` serves a room (``livekit_server.RoomServer``), plays the
scenario against it, and prints what it measured as one JSON object on stdout. A scenario that
cannot get what it waits for raises, naming it; the exit status is then non-zero.

- ``media``: a producer publishes a synthetic camera and receives the inference server's video,
  first untouched, then after a prompt; a viewer receives the same and may not publish. The
  producer joins in single-peer-connection mode (the SDK's default), the viewer with the
  two connections of ``/rtc`` (``single_peer_connection=False``), so both are served.
- ``tokens``: the SDK's connect fails with tokens that are forged, expired or for another room.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/_support
from _support.livekit_video import TrackPictures
from _support.pictures import difference, pattern
from _support.waiting import until
from livekit import rtc
from livekit_server import RoomServer

from decart_sync.emulator.livekit import INFERENCE_IDENTITY
from decart_sync.emulator.livekit.grants import AccessTokens

# Mean absolute difference (0-255) between a received frame and the picture sent. Passthrough
# loses only what two codecs and the scaling between them lose; an effect changes far more.
PASSTHROUGH_TOLERANCE = 12.0
EFFECT_MINIMUM = 30.0
# Bounds on every wait: generous, since the machine may be busy.
CONNECT_TIMEOUT = 30.0
WAIT_TIMEOUT = 45.0
FPS = 30


class Receiver(TrackPictures):
    """Reads the inference server's video track of one room as RGB frames."""

    def __init__(self, room: rtc.Room) -> None:
        super().__init__()
        self.publisher_identity: str | None = None
        room.on("track_subscribed", self._subscribed)

    def _subscribed(
        self, track: rtc.Track, _: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO and participant.identity.startswith(
            "inference-server-"
        ):
            self.publisher_identity = participant.identity
            self.read(track)

    def looks(self, picture: np.ndarray, predicate: Callable[[float], bool]) -> bool:
        return self.latest is not None and predicate(difference(self.latest, picture))


async def publish_camera(
    room: rtc.Room, picture: np.ndarray, sent: list[int] | None = None
) -> asyncio.Task[None]:
    """Publish ``picture`` as a camera track at FPS, H.264 as Decart's clients send it."""
    height, width = picture.shape[:2]
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.H264
    )
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)]).tobytes()

    async def feed() -> None:
        start = time.monotonic()
        for n in range(10**9):
            frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba)
            source.capture_frame(frame, timestamp_us=int(n * 1e6 / FPS))
            if sent is not None:
                sent[0] = n + 1
            await asyncio.sleep(max(0.0, start + (n + 1) / FPS - time.monotonic()))

    feeder = asyncio.ensure_future(feed())
    await asyncio.wait_for(room.local_participant.publish_track(track, options), CONNECT_TIMEOUT)
    return feeder


async def media(server: RoomServer) -> dict[str, Any]:
    ticket = server.ticket
    assert ticket is not None
    picture = pattern(server.model.width, server.model.height)
    producer = rtc.Room()
    received = Receiver(producer)
    await asyncio.wait_for(producer.connect(ticket.livekit_url, ticket.token), CONNECT_TIMEOUT)
    sent = [0]
    feeder = await publish_camera(producer, picture, sent)
    result: dict[str, Any] = {
        "remote_identities": sorted(p.identity for p in producer.remote_participants.values())
    }
    viewer = rtc.Room()
    try:
        await until(
            lambda: received.count >= 60,
            what="60 frames from the inference server",
            timeout=WAIT_TIMEOUT,
        )
        await until(
            lambda: received.looks(picture, lambda d: d < PASSTHROUGH_TOLERANCE),
            what="the passthrough picture",
            timeout=WAIT_TIMEOUT,
        )
        assert received.latest is not None
        result["frames"] = received.count
        result["publisher"] = received.publisher_identity
        result["size"] = [received.latest.shape[1], received.latest.shape[0]]
        result["passthrough_difference"] = difference(received.latest, picture)
        result["frames_in"] = server.frames_in()
        result["frames_sent"] = sent[0]

        server.set_prompt("sketch")
        await until(
            lambda: received.looks(picture, lambda d: d > EFFECT_MINIMUM),
            what="the sketch effect",
            timeout=WAIT_TIMEOUT,
        )
        result["effect_difference"] = difference(received.latest, picture)

        seen = rtc.Room()
        viewer = seen
        watched = Receiver(viewer)
        viewer_ticket = server.viewer_ticket()
        await asyncio.wait_for(
            viewer.connect(
                viewer_ticket.livekit_url,
                viewer_ticket.token,
                rtc.RoomOptions(single_peer_connection=False),
            ),
            CONNECT_TIMEOUT,
        )
        result["connections"] = server.connections()
        result["producer_identity"] = producer.local_participant.identity
        await until(
            lambda: watched.count >= 30, what="30 frames on the viewer", timeout=WAIT_TIMEOUT
        )
        await until(
            lambda: watched.looks(picture, lambda d: d > EFFECT_MINIMUM),
            what="the effect, viewed",
            timeout=WAIT_TIMEOUT,
        )
        assert watched.latest is not None and received.latest is not None
        result["viewer_frames"] = watched.count
        result["viewer_publisher"] = watched.publisher_identity
        result["viewer_vs_producer"] = difference(watched.latest, received.latest)
        result["viewer_can_publish"] = viewer.local_participant.permissions.can_publish
        try:
            await publish_camera(viewer, picture)
        except Exception as exc:  # the SDK's error type varies; its text is what we report
            result["viewer_publish_error"] = f"{type(exc).__name__}: {exc}"
        else:
            result["viewer_publish_error"] = None
        await watched.close()
    finally:
        feeder.cancel()
        await received.close()
        await viewer.disconnect()
        await producer.disconnect()
    return result


async def tokens(server: RoomServer) -> dict[str, Any]:
    ticket = server.ticket
    assert ticket is not None
    # The right room and identity, signed with another secret.
    forged = AccessTokens(secret="another-emulators-secret-0123456789abcdef").mint(
        ticket.room_name, f"client-{ticket.session_id}", can_publish=True
    )
    cases = {
        "bad_signature": forged,
        "expired": server.mint(ticket.room_name, "late-client", ttl=-600),
        "wrong_room": server.mint("no-such-room", "lost-client", ttl=600),
    }
    result: dict[str, Any] = {}
    for name, token in cases.items():
        room = rtc.Room()
        try:
            await asyncio.wait_for(room.connect(ticket.livekit_url, token), CONNECT_TIMEOUT)
        except rtc.ConnectError as exc:
            result[name] = exc.message
        else:
            result[name] = None
            await room.disconnect()
    # And the genuine token still works.
    room = rtc.Room()
    await asyncio.wait_for(room.connect(ticket.livekit_url, ticket.token), CONNECT_TIMEOUT)
    result["genuine"] = room.isconnected()
    await room.disconnect()
    return result


SCENARIOS = {"media": media, "tokens": tokens}


def main() -> None:
    # DRIVER_LOG=DEBUG shows every SDP and packet when a scenario needs explaining.
    logging.basicConfig(level=os.environ.get("DRIVER_LOG", "WARNING"), stream=sys.stderr)
    scenario = SCENARIOS[sys.argv[1]]
    with RoomServer() as server:
        result = asyncio.run(scenario(server))
    result["inference_identity"] = INFERENCE_IDENTITY
    print(json.dumps(result))


if __name__ == "__main__":
    main()
