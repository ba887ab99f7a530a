"""One realtime connection: a signaling WebSocket plus one aiortc peer connection.

Lives entirely on the loop thread. :meth:`Connection.open` walks the protocol's order (section 3
for a producer, section 4 for a viewer) and returns once the peer connection is ``connected``;
afterwards the connection reports what happens to a :class:`ConnectionListener` and carries
control messages with their acknowledgements. A connection is used once: a reconnect makes a new
one. This is the only module that knows the plain offer/answer transport, so another transport
(LiveKit, protocol section 9) would be a sibling of it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import attrs
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_sync import _ice, _protocol
from decart_sync._protocol import _Omitted
from decart_sync._receivers import tune_receivers
from decart_sync._redact import get_logger
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    InsufficientCreditsError,
    SessionClosedError,
    SignalingError,
    WebRTCError,
)
from decart_sync.realtime.signaling import SignalingChannel

if TYPE_CHECKING:
    from decart_sync.media.sources import VideoSource
    from decart_sync.models import ModelDefinition

_log = get_logger(__name__)

Role = Literal["producer", "viewer"]


@attrs.frozen
class AckedState:
    """The model state the server has acknowledged; a reconnect restores exactly this."""

    prompt: str | None = None
    enhance: bool = True
    image_b64: str | None = attrs.field(default=None, repr=lambda v: "<image>" if v else "None")

    def initial_message(self) -> _protocol.PromptMessage | _protocol.SetImageMessage:
        """The message that establishes this state first thing on a new connection."""
        if self.image_b64 is not None:
            return _protocol.SetImageMessage(self.image_b64, self.prompt, self.enhance)
        if self.prompt is not None:
            return _protocol.PromptMessage(self.prompt, self.enhance)
        return _protocol.SetImageMessage(None, None)  # passthrough

    def after_prompt(self, prompt: str, enhance: bool) -> AckedState:
        return attrs.evolve(self, prompt=prompt, enhance=enhance)

    def after_set_image(
        self, image_b64: str | None, prompt: str | _Omitted | None, enhance: bool | _Omitted
    ) -> AckedState:
        return AckedState(
            prompt=self.prompt if isinstance(prompt, _Omitted) else prompt,
            enhance=self.enhance if isinstance(enhance, _Omitted) else enhance,
            image_b64=image_b64,
        )


#: A message that changes the model state and is acknowledged.
StateMessage = _protocol.PromptMessage | _protocol.SetImageMessage


@attrs.define
class _PendingAck:
    """A state change on the wire, until the server acknowledges it or the connection ends."""

    waiter: asyncio.Future[None]
    message: StateMessage
    on_applied: Callable[[], None] | None

    def settle(self, success: bool, error: str | None) -> None:
        if success and self.on_applied is not None:
            self.on_applied()  # before the waiter wakes: the caller returns to the new state
        if self.waiter.done():
            return
        if success:
            self.waiter.set_result(None)
        else:
            self.waiter.set_exception(_protocol.error_from_server(error or "request failed"))


def _report_unheard(waiter: asyncio.Future[None]) -> None:
    """The outcome of a request whose caller stopped waiting: logged, since nobody hears it."""
    if waiter.cancelled():
        return
    error = waiter.exception()
    if error is None:
        _log.info("a state change whose caller timed out was applied by the server after all")
    elif not isinstance(error, SessionClosedError):
        _log.warning("a state change whose caller timed out was refused later: %s", error)


class ConnectionListener(Protocol):
    """What a connection reports, on the loop thread."""

    def on_connection_state(self, connection: Connection, state: str) -> None: ...
    def on_session_id(
        self, connection: Connection, message: _protocol.SessionIdMessage
    ) -> None: ...
    def on_tick(self, connection: Connection, message: _protocol.GenerationTickMessage) -> None: ...
    def on_server_error(self, connection: Connection, error: DecartSDKError) -> None: ...
    def on_video_frame(self, connection: Connection, frame: Any) -> None: ...
    def on_source_error(self, error: DecartSDKError) -> None: ...
    def on_lost(self, connection: Connection, error: DecartSDKError) -> None: ...


def _prefer_codec(pc: RTCPeerConnection, codec: str) -> None:
    """Put ``codec`` (with its retransmission companion) first in the video offer."""
    wanted = f"video/{codec}".lower()
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    preferred = [c for c in capabilities if c.mimeType.lower() == wanted]
    preferred += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(preferred)


def _ack_limit(message: StateMessage) -> float:
    """How long the protocol waits for this message's acknowledgement (section 7)."""
    if isinstance(message, _protocol.PromptMessage):
        return _protocol.PROMPT_ACK_TIMEOUT
    return _protocol.SET_IMAGE_ACK_TIMEOUT


@attrs.frozen
class ConnectionPlan:
    """What each connection of one session is opened with; a reconnect opens the same plan."""

    role: Role
    url: str
    model: ModelDefinition | None = None
    source: VideoSource | None = None  # a producer's input
    ice_servers: Any = None
    media_executor: concurrent.futures.Executor | None = None
    video_codec: str | None = None


class Connection:
    """A producer's or a viewer's single connection attempt and, if it opens, its life."""

    def __init__(self, plan: ConnectionPlan, listener: ConnectionListener) -> None:
        self.role = plan.role
        self._plan = plan
        self._listener = listener
        host = urlsplit(plan.url).hostname or ""
        self._loopback = _ice.is_loopback_host(host)
        self._gather_on = [_ice.loopback_address_for(host)] if self._loopback else None
        self._signaling: SignalingChannel | None = None
        self._pc: RTCPeerConnection | None = None
        self._local_track: MediaStreamTrack | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Connect-phase waits; an `error` message or a drop fails whichever is pending.
        self._opening: asyncio.Future[None] | None = None
        self._answer: asyncio.Future[str] | None = None
        self._remote_candidates: list[_protocol.IceCandidate] = []
        self._remote_description_set = False
        # Acks: prompt acks are matched by prompt text; one set_image is outstanding at a time.
        self._prompt_acks: dict[str, collections.deque[_PendingAck]] = {}
        self._image_ack: _PendingAck | None = None
        self._open = False
        self._ended = False
        self._server_error: DecartSDKError | None = None
        self.session_id: str | None = None

    # ------------------------------------------------------------------ opening

    async def open(self, initial: AckedState | None) -> None:
        """Run the protocol until the peer connection is connected. The caller bounds the
        total time (cancelling this coroutine closes everything it opened)."""
        loop = asyncio.get_running_loop()
        self._opening = loop.create_future()
        try:
            self._signaling = await SignalingChannel.open(
                self._plan.url,
                timeout=30.0,
                on_message=self._on_message,
                on_closed=self._on_signaling_closed,
            )
            if self.role == "producer":
                first = (initial or AckedState()).initial_message()
                limit = _ack_limit(first)
                try:
                    await asyncio.wait_for(self.request(first), limit)
                except asyncio.TimeoutError as exc:
                    if isinstance(exc, DecartSDKError):
                        raise
                    raise DecartTimeoutError(
                        f"the server did not acknowledge the initial state within {limit:g}s"
                    ) from None
            self._pc = self._create_peer_connection()
            await self._negotiate()
            await self._race(self._opening)
            self._open = True
        except BaseException as exc:
            if isinstance(exc, Exception):
                # The server often says why and closes at once; the reader thread has then
                # already queued its words for the loop. Let them land: they beat "closed".
                await asyncio.sleep(0)
            await self.close()
            if isinstance(exc, Exception) and self._server_error is not None:
                raise self._server_error from None
            raise

    def _create_peer_connection(self) -> RTCPeerConnection:
        configuration = _ice.rtc_configuration(self._plan.ice_servers, loopback=self._loopback)
        pc = RTCPeerConnection(configuration)
        if self.role == "producer":
            source, model = self._plan.source, self._plan.model
            assert source is not None and model is not None
            self._local_track = source.open_track(
                width=model.width,
                height=model.height,
                fps=model.fps,
                executor=self._plan.media_executor,
                on_error=self._listener.on_source_error,
            )
            pc.addTrack(self._local_track)
            if self._plan.video_codec is not None:
                _prefer_codec(pc, self._plan.video_codec)
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        tune_receivers(pc)  # frames reach the user one interval sooner, decoded on one thread

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._drain(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self._on_pc_state(pc.connectionState)

        return pc

    async def _negotiate(self) -> None:
        assert self._pc is not None and self._signaling is not None
        self._answer = asyncio.get_running_loop().create_future()
        with _ice.host_addresses(self._gather_on):
            await self._pc.setLocalDescription(await self._pc.createOffer())
        offer_sdp = self._pc.localDescription.sdp
        await self._signaling.send(_protocol.OfferMessage(offer_sdp))
        for candidate in _ice.sdp_candidates(offer_sdp):
            await self._signaling.send(_protocol.IceCandidateMessage(candidate))
        sdp = await self._race(self._answer)
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

    async def _race(self, waiter: asyncio.Future[Any]) -> Any:
        """Wait for ``waiter`` unless the connect fails first (error message, drop)."""
        assert self._opening is not None
        if waiter is self._opening:
            return await asyncio.shield(waiter)
        done, _ = await asyncio.wait({waiter, self._opening}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        self._opening.result()  # raises the failure
        raise WebRTCError("connection ended while connecting")

    async def _add_candidate(self, candidate: _protocol.IceCandidate) -> None:
        assert self._pc is not None
        try:
            rtc = _ice.parse_candidate(candidate)
        except ValueError:
            _log.warning("ignoring malformed ICE candidate from server: %r", candidate.candidate)
            return
        if rtc is not None:  # None: an end-of-candidates marker, which aiortc has no use for
            await self._pc.addIceCandidate(rtc)

    # ------------------------------------------------------------------ incoming

    def _on_message(self, message: _protocol.ServerMessage) -> None:
        if self._ended:
            return
        if isinstance(message, _protocol.AnswerMessage):
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(message.sdp)
        elif isinstance(message, _protocol.IceCandidateMessage):
            if self._remote_description_set:
                self._spawn(self._add_candidate(message.candidate))
            else:
                self._remote_candidates.append(message.candidate)
        elif isinstance(message, _protocol.SessionIdMessage):
            self.session_id = message.session_id
            self._listener.on_session_id(self, message)
        elif isinstance(message, _protocol.PromptAckMessage):
            waiters = self._prompt_acks.get(message.prompt)
            if waiters:
                pending = waiters.popleft()
                if not waiters:
                    del self._prompt_acks[message.prompt]
                pending.settle(message.success, message.error)
        elif isinstance(message, _protocol.SetImageAckMessage):
            if self._image_ack is not None:
                pending, self._image_ack = self._image_ack, None
                pending.settle(message.success, message.error)
        elif isinstance(message, _protocol.ErrorMessage):
            self._on_error_message(_protocol.error_from_server(message.error))
        elif isinstance(message, _protocol.GenerationStartedMessage):
            self._listener.on_connection_state(self, "generating")
        elif isinstance(message, _protocol.GenerationTickMessage):
            self._listener.on_tick(self, message)
        elif isinstance(message, _protocol.GenerationEndedMessage):
            _log.info("generation ended after %ss: %s", message.seconds, message.reason)
            if _protocol.INSUFFICIENT_CREDITS in message.reason.lower():
                self._on_error_message(InsufficientCreditsError(message.reason))

    def _on_error_message(self, error: DecartSDKError) -> None:
        # Protocol: an error fails every pending wait at once; during connect it fails connect.
        self._fail_pending(error)
        # The server's words explain the close that usually follows them (and decide whether a
        # reconnect can help), so they are kept for it.
        self._server_error = self._server_error or error
        if not self._open:
            if self._opening is not None and not self._opening.done():
                self._opening.set_exception(error)
        else:
            self._listener.on_server_error(self, error)

    def _on_signaling_closed(self, error: DecartSDKError | None) -> None:
        self._lose(
            self._server_error or error or WebRTCError("the server closed the signaling connection")
        )

    def _on_pc_state(self, state: str) -> None:
        if self._ended:
            return
        if state == "connected":
            if self._opening is not None and not self._opening.done():
                self._opening.set_result(None)
            self._listener.on_connection_state(self, "connected")
        elif state in ("failed", "closed"):
            self._lose(WebRTCError(f"peer connection {state}"))

    def _lose(self, error: DecartSDKError) -> None:
        """The connection ended without being asked to."""
        if self._ended:
            return
        self._fail_pending(error)
        if not self._open:
            if self._opening is not None and not self._opening.done():
                self._opening.set_exception(error)
            return
        self._ended = True
        self._listener.on_lost(self, error)

    def _fail_pending(self, error: BaseException) -> None:
        pending = [p for waiters in self._prompt_acks.values() for p in waiters]
        if self._image_ack is not None:
            pending.append(self._image_ack)
        self._prompt_acks.clear()
        self._image_ack = None
        for request in pending:
            if not request.waiter.done():
                request.waiter.set_exception(error)

    async def _drain(self, track: MediaStreamTrack) -> None:
        # Always read the remote track: aiortc queues decoded frames without bound otherwise.
        video = track.kind == "video"
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if video and not self._ended:
                self._listener.on_video_frame(self, frame)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ control

    async def request(
        self, message: StateMessage, on_applied: Callable[[], None] | None = None
    ) -> None:
        """Send one state change and wait for its acknowledgement; raises what the server
        answered. ``on_applied`` runs when the server acknowledges success.

        The wait has no limit of its own: the caller bounds it. A caller that stops waiting
        does not withdraw the request, since the server will still answer it: it stays
        outstanding until its acknowledgement (``on_applied`` still runs then) or the end of
        the connection. So an acknowledgement is never credited to a later request, and a
        ``set_image`` is not sent while an earlier one is outstanding (the protocol matches
        image acknowledgements by order alone)."""
        if isinstance(message, _protocol.SetImageMessage):
            while self._image_ack is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._image_ack.waiter)
        if self._signaling is None or self._ended:
            raise SessionClosedError("the connection is closed")
        pending = _PendingAck(asyncio.get_running_loop().create_future(), message, on_applied)
        if isinstance(message, _protocol.PromptMessage):
            self._prompt_acks.setdefault(message.prompt, collections.deque()).append(pending)
        else:
            self._image_ack = pending
        try:
            await self._signaling.send(message)
        except BaseException:
            self._withdraw(pending)  # never sent: nothing will answer it
            raise
        try:
            await asyncio.shield(pending.waiter)
        except asyncio.CancelledError:
            pending.waiter.add_done_callback(_report_unheard)
            raise

    def _withdraw(self, pending: _PendingAck) -> None:
        if self._image_ack is pending:
            self._image_ack = None
        for waiters in self._prompt_acks.values():
            if pending in waiters:
                waiters.remove(pending)
        pending.waiter.cancel()

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

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Close everything this connection opened. Idempotent; reports nothing."""
        self._ended = True
        self._fail_pending(SessionClosedError("the session was disconnected"))
        if self._opening is not None:
            if self._opening.done() and not self._opening.cancelled():
                self._opening.exception()  # consumed: the failure already reached the caller
            else:
                self._opening.cancel()
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
        if self._local_track is not None:
            self._local_track.stop()
        signaling, self._signaling = self._signaling, None
        if signaling is not None:
            await signaling.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(self._tasks, timeout=2)
