"""The legacy media transport, ``webrtc`` (protocol section 3): one aiortc peer connection whose
offer, answer and candidates travel on the control WebSocket.

A :class:`WebRTCMedia` is one connection's media; the :class:`~.connection.Connection` owns it,
runs its :meth:`~WebRTCMedia.connect` during the connection's opening, hands it the messages
that belong to this transport, and closes it. Everything here runs on the loop thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from decart_sync import _ice, _protocol
from decart_sync._receivers import tune_receivers
from decart_sync._redact import get_logger
from decart_sync._tasks import read_track
from decart_sync.errors import SignalingError, WebRTCError
from decart_sync.realtime._transports import CODECS

if TYPE_CHECKING:
    from decart_sync.realtime._connection import AckedState, Connection

_log = get_logger(__name__)


def _prefer_codec(pc: RTCPeerConnection, codec: str) -> None:
    """Put ``codec`` (with its retransmission companion) first in the video offer."""
    wanted = f"video/{codec}".lower()
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    preferred = [c for c in capabilities if c.mimeType.lower() == wanted]
    preferred += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(preferred)


class WebRTCMedia:
    """The peer connection of one connection, and the offer/answer that sets it up."""

    name: Final = "webrtc"

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._loopback = _ice.is_loopback_host(connection.host)
        self._gather_on = [_ice.loopback_address_for(connection.host)] if self._loopback else None
        self._pc: RTCPeerConnection | None = None
        self._local_track: MediaStreamTrack | None = None
        self._answer: Any = None  # the future the answer's SDP arrives in
        self._remote_candidates: list[_protocol.IceCandidate] = []
        self._remote_description_set = False

    async def connect(self, initial: AckedState | None) -> None:
        """The legacy order: the initial state, acknowledged; then offer, answer, candidates.
        Returns once the offer/answer is done (the connection waits for ``connected``)."""
        connection = self._connection
        if connection.role == "producer":
            await connection.establish(initial)
        self._pc = self._create_peer_connection()
        await self._negotiate()

    def on_message(self, message: _protocol.ServerMessage) -> bool:
        """Take this transport's messages; False for any other."""
        if isinstance(message, _protocol.AnswerMessage):
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(message.sdp)
        elif isinstance(message, _protocol.IceCandidateMessage):
            if self._remote_description_set:
                self._connection.spawn(self._add_candidate(message.candidate), "candidate")
            else:
                self._remote_candidates.append(message.candidate)
        else:
            return False
        return True

    def _create_peer_connection(self) -> RTCPeerConnection:
        connection = self._connection
        plan = connection.plan
        configuration = _ice.rtc_configuration(plan.ice_servers, loopback=self._loopback)
        pc = RTCPeerConnection(configuration)
        if connection.role == "producer":
            self._local_track = connection.open_source_track()
            pc.addTrack(self._local_track)
            # A codec aiortc cannot send (vp9, av1: asked of livekit, which fell back) is no
            # preference here: the offer keeps aiortc's defaults.
            if plan.video_codec in CODECS["webrtc"]:
                _prefer_codec(pc, plan.video_codec)
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        tune_receivers(pc)  # frames reach the user one interval sooner, decoded on one thread

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Always read the remote track: aiortc queues decoded frames without bound otherwise.
            video = track.kind == "video"
            connection.spawn(
                read_track(track, connection.deliver_frame if video else None), f"read-{track.kind}"
            )

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected":
                connection.media_connected()
            elif state in ("failed", "closed"):
                connection.media_lost(WebRTCError(f"peer connection {state}"))

        return pc

    async def _negotiate(self) -> None:
        assert self._pc is not None
        connection = self._connection
        self._answer = connection.new_waiter()
        with _ice.host_addresses(self._gather_on):
            await self._pc.setLocalDescription(await self._pc.createOffer())
        offer_sdp = self._pc.localDescription.sdp
        await connection.send(_protocol.OfferMessage(offer_sdp))
        for candidate in _ice.sdp_candidates(offer_sdp):
            await connection.send(_protocol.IceCandidateMessage(candidate))
        sdp = await connection.race(self._answer)
        try:
            with _ice.host_addresses(self._gather_on):
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            # aiortc reports an SDP it cannot use with whatever its parser tripped on.
            raise SignalingError(f"the server's SDP answer is not usable: {exc}") from None
        self._remote_description_set = True
        for candidate in self._remote_candidates:
            await self._add_candidate(candidate)
        self._remote_candidates.clear()

    async def _add_candidate(self, candidate: _protocol.IceCandidate) -> None:
        assert self._pc is not None
        try:
            rtc = _ice.parse_candidate(candidate)
        except ValueError:
            _log.warning("ignoring malformed ICE candidate from server: %r", candidate.candidate)
            return
        if rtc is not None:  # None: an end-of-candidates marker, which aiortc has no use for
            await self._pc.addIceCandidate(rtc)

    async def round_trip_time(self) -> float | None:
        """Seconds, from the peer connection's RTCP reports; None until one arrives."""
        if self._pc is None:
            return None
        report = await self._pc.getStats()
        for stats in report.values():
            rtt = getattr(stats, "roundTripTime", None)
            if getattr(stats, "type", "") == "remote-inbound-rtp" and rtt is not None:
                return float(rtt)
        return None

    async def close(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
        if self._local_track is not None:
            self._local_track.stop()
