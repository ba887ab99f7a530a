"""One participant's signal connection: the part of LiveKit's protocol the ``livekit`` SDK needs.

The sequence (protocol.md section 9; the Rust core's ``rtc_session.rs`` is the client side):

1. The server speaks first: ``join`` (the room, this participant, everyone else with the
   inference server and its video track, ``subscriber_primary``, ping interval and timeout).
2. At once, an ``offer`` for the subscriber peer connection: the inference server's video,
   streamed as ``<participant sid>|<track sid>`` (the SDK maps a received track to its
   publication by that stream id), and the ``_reliable``/``_lossy`` data channels LiveKit
   opens on every subscriber. The client ``answer``s; the room counts as connected once
   this connection is (``subscriber_primary``).
3. To publish, the client sends ``add_track`` (answered by ``track_published`` with the new
   track's sid, or a ``request_response`` NOT_ALLOWED without the grant), then an ``offer`` for
   its publisher connection (the track and its own data channels), which the server answers.
4. Candidates for either connection come as ``trickle``; ``ping_req`` gets a ``pong_resp``;
   ``leave`` ends the participant, and so does silence longer than the ping timeout.

In single-peer-connection mode (``/rtc/v1``, the SDK's first choice) there is no subscriber
connection: the client always offers and the server always answers, on one connection. Its
first offer comes with the join request, with data channels and three recvonly audio and video
m-lines ready for what it will receive. The server answers after the ``join``, sending the
inference server's video on the first recvonly video m-line, and names it in the answer's
``mid_to_track_id`` (the SDK identifies a received track by its m-line there). An offer with no
free video m-line gets a ``media_sections_requirement`` for one, and the client offers again.
Candidates go to the one connection whatever their target.

Messages are handled one at a time, in order. Everything else the client may send
(subscription settings, layer updates, sync state, mutes) changes nothing here and is ignored.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from livekit.protocol import models, rtc

from decart_sync._redact import get_logger
from decart_sync.emulator.livekit.grants import RoomGrant
from decart_sync.emulator.livekit.room import Room, new_sid
from decart_sync.emulator.livekit.transport import PeerTransport
from decart_sync.emulator.livekit.wire import SignalSocket, leave_request, parse_candidate_init

_log = get_logger(__name__)

# LiveKit's own defaults (livekit/livekit pkg/rtc/participant.go).
PING_INTERVAL: Final = 5
PING_TIMEOUT: Final = 15
# The signal protocol version the livekit 1.2 SDK announces (rust-sdks' PROTOCOL_VERSION); the
# server claims the same one.
PROTOCOL_VERSION: Final = 17
SERVER_VERSION: Final = "decart-emulator"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Participant:
    """A client in a room, from its JoinResponse to its leave. Used on the emulator's loop."""

    def __init__(
        self,
        room: Room,
        grant: RoomGrant,
        socket: SignalSocket,
        addresses: list[str] | None,
        *,
        join: rtc.JoinRequest | None = None,
    ) -> None:
        """``join``: the request of a single-peer-connection join; None for the two-connection
        join (``/rtc``)."""
        self.room = room
        self.socket = socket
        self.identity = grant.identity
        self.can_publish = grant.can_publish
        self.can_subscribe = grant.can_subscribe
        self.sid = new_sid("PA_")
        self.joined_at = time.time()
        self.state = models.ParticipantInfo.State.JOINED
        #: Published tracks by the client's id for them (``cid``).
        self.tracks: dict[str, models.TrackInfo] = {}
        self.publisher = PeerTransport(addresses, self._transport_ended)
        #: None in single-peer-connection mode, where the publisher carries both directions.
        self.subscriber = PeerTransport(addresses, self._transport_ended) if join is None else None
        self._first_offer = (
            join.publisher_offer if join and join.HasField("publisher_offer") else None
        )
        self._subscription_mid: str | None = None  # single-peer-connection mode: where it goes
        self._version = 0
        self._taken: set[str] = set()  # ids of received tracks already handed to the room
        self._outputs: list[MediaStreamTrack] = []
        self._closed = False
        self._ending: asyncio.Future[None] | None = None  # a close started by a failure

    def info(self) -> models.ParticipantInfo:
        self._version += 1
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.identity,
            state=self.state,
            tracks=list(self.tracks.values()),
            joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000),
            version=self._version,
            permission=models.ParticipantPermission(
                can_subscribe=self.can_subscribe,
                can_publish=self.can_publish,
                can_publish_data=self.can_publish,
            ),
            is_publisher=bool(self.tracks),
            kind=models.ParticipantInfo.Kind.STANDARD,
        )

    # ------------------------------------------------------------------ the connection

    async def run(self) -> None:
        """Serve the participant until it leaves, goes silent, or is sent away."""
        try:
            await self.socket.send(join=self._join_response())
            self.state = models.ParticipantInfo.State.ACTIVE
            await self.room.announce(self)
            if self.subscriber is not None:
                await self._offer_subscription()
            elif self._first_offer is not None:
                await self._answer(self._first_offer)
            async for request in self.socket.requests(idle_timeout=PING_TIMEOUT):
                if not await self._handle(request):
                    break
        except Exception:
            # A description aiortc cannot apply, most likely: the participant cannot go on.
            _log.exception("%s in room %s failed; closing it", self.identity, self.room.name)
        finally:
            await self.close()

    def _join_response(self) -> rtc.JoinResponse:
        return rtc.JoinResponse(
            room=self.room.info(),
            participant=self.info(),
            other_participants=self.room.others(self),
            server_version=SERVER_VERSION,
            server_info=models.ServerInfo(
                edition=models.ServerInfo.Edition.Standard,
                version=SERVER_VERSION,
                protocol=PROTOCOL_VERSION,
            ),
            # The subscriber connection carries what the client came for, so it is the one
            # the client waits for; the publisher is negotiated when it publishes.
            subscriber_primary=self.can_subscribe,
            fast_publish=False,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
        )

    async def _offer_subscription(self) -> None:
        assert self.subscriber is not None
        pc = self.subscriber.pc
        # The track before the data channels: its transport becomes the bundle's, and the
        # data channels join it (see transport.py on why aiortc needs that order).
        if self.can_subscribe:
            output = self._subscription()
            self._name_stream(pc.addTransceiver(output, direction="sendonly").sender)
        self._open_data_channels(pc)
        sdp = await self.subscriber.offer()
        await self.socket.send(offer=rtc.SessionDescription(type="offer", sdp=sdp, id=1))

    def _subscription(self) -> MediaStreamTrack:
        """A track of the inference server's video for this participant."""
        output = self.room.media.output()
        self._outputs.append(output)
        return output

    def _name_stream(self, sender: RTCRtpSender) -> None:
        # aiortc names the stream of each sender at random; the SDK needs LiveKit's
        # "<participant sid>|<track sid>" there, or it drops the track as unknown. The
        # attribute is read when the description is written, so it must be set before.
        if not hasattr(sender, "_stream_id"):
            raise RuntimeError("aiortc's RTCRtpSender has no _stream_id: unsupported version")
        sender._stream_id = f"{self.room.inference_sid}|{self.room.video_track_sid}"

    @staticmethod
    def _open_data_channels(pc: RTCPeerConnection) -> None:
        # The data channels LiveKit opens towards every subscriber.
        pc.createDataChannel("_reliable", ordered=True)
        pc.createDataChannel("_lossy", ordered=False, maxRetransmits=0)

    async def _answer(self, offer: rtc.SessionDescription) -> None:
        """Answer an offer on the publisher connection (in single-peer-connection mode, the
        only one): take the client's tracks, and place the subscription if it goes here."""
        placed_before = self._subscription_mid is not None
        sdp = await self.publisher.answer(offer.sdp, self._attach)
        mid = self._subscription_mid
        mapping = {} if mid is None else {mid: self.room.video_track_sid}
        await self.socket.send(
            answer=rtc.SessionDescription(
                type="answer", sdp=sdp, id=offer.id, mid_to_track_id=mapping
            )
        )
        if self.subscriber is not None or not self.can_subscribe or placed_before:
            return
        if mid is None:
            # No recvonly video m-line to send on: ask for one; the client offers again.
            await self.socket.send(
                media_sections_requirement=rtc.MediaSectionsRequirement(num_videos=1)
            )
        else:  # placed by this answer: the connection now carries the subscription
            self._open_data_channels(self.publisher.pc)

    def _attach(self, pc: RTCPeerConnection) -> None:
        """Between applying an offer and answering it."""
        self._take_tracks(pc)
        if self.subscriber is None and self.can_subscribe and self._subscription_mid is None:
            self._place_subscription(pc)

    def _place_subscription(self, pc: RTCPeerConnection) -> None:
        # A video m-line the client receives on and sends nothing on; aiortc has made it a
        # recvonly transceiver with no remote track. Sending on it turns the answer sendonly.
        for transceiver in pc.getTransceivers():
            if (
                transceiver.kind == "video"
                and transceiver.mid is not None
                and transceiver.receiver.track is None
                and transceiver.sender.track is None
            ):
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(self._subscription())
                self._name_stream(transceiver.sender)
                self._subscription_mid = transceiver.mid
                return

    async def _handle(self, request: rtc.SignalRequest) -> bool:
        """Act on one request; False when the participant is leaving."""
        kind = request.WhichOneof("message")
        if kind == "offer":
            await self._answer(request.offer)
        elif kind == "answer":
            if self.subscriber is None:
                _log.warning("%s: an answer in single-peer-connection mode; ignored", self.identity)
            else:
                await self.subscriber.accept_answer(request.answer.sdp)
        elif kind == "trickle":
            await self._add_candidate(request.trickle)
        elif kind == "add_track":
            await self._add_track(request.add_track)
        elif kind == "ping_req":
            await self.socket.send(
                pong_resp=rtc.Pong(
                    last_ping_timestamp=request.ping_req.timestamp, timestamp=_now_ms()
                )
            )
        elif kind == "ping":
            await self.socket.send(pong=_now_ms())
        elif kind == "leave":
            _log.info("%s left room %s", self.identity, self.room.name)
            return False
        else:
            _log.debug("%s: %s ignored", self.identity, kind)
        return True

    async def _add_candidate(self, trickle: rtc.TrickleRequest) -> None:
        try:
            candidate = parse_candidate_init(trickle.candidateInit)
        except ValueError as exc:
            _log.warning("%s: trickled candidate skipped: %s", self.identity, exc)
            return
        if trickle.target == rtc.SignalTarget.SUBSCRIBER and self.subscriber is not None:
            await self.subscriber.add_candidate(candidate)
        else:
            await self.publisher.add_candidate(candidate)

    async def _add_track(self, request: rtc.AddTrackRequest) -> None:
        refusal = None
        if not self.can_publish:
            refusal = rtc.RequestResponse.Reason.NOT_ALLOWED
        elif request.type not in (models.TrackType.AUDIO, models.TrackType.VIDEO):
            refusal = rtc.RequestResponse.Reason.UNSUPPORTED_TYPE
        if refusal is not None:
            _log.info("%s: add_track refused (%s)", self.identity, refusal)
            await self.socket.send(
                request_response=rtc.RequestResponse(reason=refusal, add_track=request)
            )
            return
        track = self.tracks.get(request.cid)
        if track is None:  # a repeated request gets the same track
            track = models.TrackInfo(
                sid=new_sid("TR_"),
                type=request.type,
                name=request.name,
                width=request.width,
                height=request.height,
                muted=request.muted,
                source=request.source,
                layers=request.layers,
                stream=request.stream,
            )
            self.tracks[request.cid] = track
        await self.socket.send(
            track_published=rtc.TrackPublishedResponse(cid=request.cid, track=track)
        )
        await self.room.announce(self)

    def _take_tracks(self, pc: RTCPeerConnection) -> None:
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if track is not None and track.id not in self._taken:
                self._taken.add(track.id)
                self.room.take_track(self, track)

    # ------------------------------------------------------------------ ending

    def _transport_ended(self) -> None:
        if self._closed:
            return
        # A failed connection cannot be resumed here: the client reconnects from scratch. (A
        # client that left closes its connections too, often before its leave arrives.)
        _log.info("%s: a peer connection ended; the participant leaves", self.identity)
        self._ending = asyncio.ensure_future(self.close())

    async def close(self, reason: models.DisconnectReason | None = None) -> None:
        """End the participant: with a ``leave`` carrying ``reason`` when the server sends it
        away, silently when it left. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.state = models.ParticipantInfo.State.DISCONNECTED
        if reason is not None:
            await self.socket.send(leave=leave_request(reason))
        await self.socket.close()
        for output in self._outputs:
            output.stop()
        await self.publisher.close()
        if self.subscriber is not None:
            await self.subscriber.close()
        await self.room.remove(self)
