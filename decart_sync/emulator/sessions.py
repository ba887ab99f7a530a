"""Producer and viewer sessions: what happens on one realtime or subscribe WebSocket.

A :class:`ProducerSession` follows protocol section 3. It accepts control messages (``prompt``,
``set_image``) at any time, and takes its media transport from the first media message it gets:

- ``offer`` (legacy ``webrtc``): accepted once an initial state was, or, as old JS clients
  (<= 0.0.47) send it, before any state, which then means passthrough. It is answered with
  ``session_id`` and ``answer`` (whose SDP carries the candidates; no ``ready``).
- ``livekit_join`` (``livekit``): passthrough at once if the join says so; then, after a stay in
  the queue if the queue fault holds one (``queue_position`` messages), a room is opened on the
  emulator's :class:`~decart_sync.emulator.livekit.RoomHost` and handed over as
  ``livekit_room_info``. The initial state may come before the join (JS 0.1.x sends it right
  after) or after the room info (Python 0.2.4); the frames the client publishes are dropped
  until it has arrived. The room closes with the session.

A media message of the other transport, or of one the server does not serve, is an ``error``.
Both transports share the rest: the frame pipeline, the acks, and, when the first transformed
frame goes out, ``generation_started`` and then a ``generation_tick`` every second. A time limit
ends the session with ``generation_ended`` reason ``timeout``.
An acknowledgement goes out only once the new state is in effect (a frame rendered with it is
the latest output). :class:`ViewerSession` (section 4) receives the producer's output and may
not change anything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import uuid
from collections.abc import Callable
from typing import ClassVar, Final, Literal, get_args

import attrs
from aiohttp import WSCloseCode
from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay

from decart_sync._protocol import (
    ClientMessage,
    GenerationEndedMessage,
    GenerationStartedMessage,
    GenerationTickMessage,
    LiveKitJoinMessage,
    LiveKitRoomInfoMessage,
    PromptAckMessage,
    PromptMessage,
    QueuePositionMessage,
    ServerMessage,
    SessionIdMessage,
    SetImageAckMessage,
    SetImageMessage,
)
from decart_sync._redact import get_logger
from decart_sync._tasks import read_track
from decart_sync.emulator.auth import Grant
from decart_sync.emulator.effects import (
    MAX_IMAGE_BYTES,
    InvalidReferenceImage,
    ReferenceImage,
    decode_reference_image,
    effect_for,
)
from decart_sync.emulator.faults import FaultPlan
from decart_sync.emulator.livekit import PipelineMedia, RoomHost
from decart_sync.emulator.pipeline import FramePipeline
from decart_sync.emulator.signaling import SignalingChannel, SignalingSession
from decart_sync.models import ModelDefinition

_log = get_logger(__name__)

SessionState = Literal["waiting_state", "queued", "negotiating", "generating", "ended"]
#: The media transports (protocol.md): ``livekit`` rooms, the legacy ``webrtc`` offer/answer.
Transport = Literal["webrtc", "livekit"]
TRANSPORTS: Final[tuple[Transport, ...]] = get_args(Transport)
# How often a queued session is told its place.
QUEUE_REPORT_INTERVAL: Final = 1.0

SUBSCRIBER_CONTROL: Final = "Control messages are not allowed for subscribers"
BLANK_PROMPT: Final = "prompt must not be empty or blank"


@attrs.frozen
class SessionInfo:
    """A snapshot of one producer session, as :meth:`Emulator.sessions` reports it."""

    session_id: str
    model: str
    prompt: str | None
    enhance: bool
    has_image: bool
    effect: str
    frames_in: int
    frames_out: int
    frames_dropped: int
    subscribers: int
    state: SessionState
    #: Seconds generated so far (what ``generation_tick`` reports).
    seconds: int
    #: ICE candidates the client trickled as ``ice-candidate`` messages.
    candidates_received: int
    #: The media transport the client chose (None until its first ``offer`` or ``livekit_join``).
    transport: Transport | None
    #: The session's LiveKit room, once opened.
    room_name: str | None


@attrs.define
class SessionContext:
    """What every session needs from its server."""

    bind_host: str
    port: int
    executor: concurrent.futures.Executor
    faults: FaultPlan
    #: Called (on the loop) whenever a session's observable state changes.
    notify: Callable[[], None]
    #: Hosts the sessions' LiveKit rooms.
    rooms: RoomHost
    #: The transports served; a media message of another is refused as an unknown type.
    transports: frozenset[Transport] = frozenset(TRANSPORTS)
    #: The ids of the sessions the queue fault holds, first come first.
    queue: list[str] = attrs.field(factory=list)


def unknown_type_error(kind: str) -> str:
    """The ``error`` for a message type the server does not know: what
    :func:`~decart_sync._protocol.parse_client_message` says, so a transport the server does
    not serve looks exactly like one it never heard of (an ``auto`` client falls back on it)."""
    return f"unknown message type {kind!r}"


def decode_image_data(text: str) -> ReferenceImage:
    """``set_image``'s base64 ``image_data`` as a reference image. CPU work: run it in an
    executor. Raises :class:`InvalidReferenceImage` with the text for the failed ack."""
    # base64 is 4/3 of the bytes it carries: refuse an oversized image before decoding it.
    if len(text) > (MAX_IMAGE_BYTES // 3 + 1) * 4:
        raise InvalidReferenceImage(f"invalid image: too large, at most {MAX_IMAGE_BYTES} bytes")
    if not text:
        raise InvalidReferenceImage("invalid image: image_data is empty; send base64 or null")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidReferenceImage("invalid image: image_data is not valid base64") from None
    return decode_reference_image(data)


class ProducerSession(SignalingSession):
    """A realtime session: the client's video in, the transformed video out."""

    role: ClassVar[str] = "producer"

    def __init__(
        self,
        channel: SignalingChannel,
        context: SessionContext,
        model: ModelDefinition,
        grant: Grant,
        server_ip: str,
        room_base_url: str,
    ) -> None:
        """``room_base_url``: the WebSocket base URL the client reached the server on, under
        which its room is served (``ws://host:port``)."""
        super().__init__(channel, context.bind_host)
        self.session_id = uuid.uuid4().hex
        channel.label = f"session {self.session_id} ({channel.label})"
        self.model = model
        self.grant = grant
        self.context = context
        self.server_ip = server_ip
        self.room_base_url = room_base_url
        # Closed until the initial state (or passthrough) arrives: a LiveKit client may publish
        # before it sends its state.
        self.pipeline = FramePipeline(
            model, context.executor, self._first_frame_sent, input_open=False
        )
        self.relay = MediaRelay()
        self.transport: Transport | None = None
        self.room_name: str | None = None
        self.viewers: set[ViewerSession] = set()
        self.prompt: str | None = None
        self.enhance = True
        self.image: ReferenceImage | None = None
        self._state_accepted = False
        self._generation_started_at: float | None = None
        if grant.max_session_duration is not None:
            self.spawn(self._end_after(grant.max_session_duration), "time-limit")

    # ------------------------------------------------------------------ observation

    @property
    def state(self) -> SessionState:
        if self.ended:
            return "ended"
        if self._generation_started_at is not None:
            return "generating"
        if self.session_id in self.context.queue:
            return "queued"
        return "negotiating" if self._state_accepted else "waiting_state"

    @property
    def seconds(self) -> int:
        """Whole seconds generated so far."""
        if self._generation_started_at is None:
            return 0
        return int(asyncio.get_running_loop().time() - self._generation_started_at)

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.session_id,
            model=self.model.name,
            prompt=self.prompt,
            enhance=self.enhance,
            has_image=self.image is not None,
            effect=self.pipeline.effect.name,
            frames_in=self.pipeline.frames_in,
            frames_out=self.pipeline.frames_out,
            frames_dropped=self.pipeline.frames_dropped,
            # Legacy viewers on their WebSockets, and LiveKit viewers in the session's room.
            subscribers=len(self.viewers)
            + (0 if self.room_name is None else self.context.rooms.viewers(self.room_name)),
            state=self.state,
            seconds=self.seconds,
            candidates_received=self.candidates_received,
            transport=self.transport,
            room_name=self.room_name,
        )

    def on_changed(self) -> None:
        self.context.notify()

    # ------------------------------------------------------------------ control messages

    async def on_control(self, message: ClientMessage) -> None:
        if isinstance(message, PromptMessage):
            await self._set_prompt(message)
        elif isinstance(message, SetImageMessage):
            await self._set_image(message)
        elif isinstance(message, LiveKitJoinMessage):
            await self._join(message)

    async def _set_prompt(self, message: PromptMessage) -> None:
        if not message.prompt.strip():
            await self._acknowledge(PromptAckMessage(message.prompt, False, BLANK_PROMPT))
            return
        await self._apply(message.prompt, message.enhance_prompt, self.image)
        await self._acknowledge(PromptAckMessage(message.prompt, True, None))

    async def _set_image(self, message: SetImageMessage) -> None:
        # An omitted prompt or enhance_prompt keeps the current one; null clears the prompt.
        prompt = (
            message.prompt
            if isinstance(message.prompt, str) or message.prompt is None
            else self.prompt
        )
        enhance = (
            message.enhance_prompt if isinstance(message.enhance_prompt, bool) else self.enhance
        )
        if prompt is not None and not prompt.strip():
            await self._acknowledge(
                SetImageAckMessage(False, f"{BLANK_PROMPT}; send null to clear it")
            )
            return
        image = None
        if message.image_data is not None:
            loop = asyncio.get_running_loop()
            try:
                image = await loop.run_in_executor(
                    self.context.executor, decode_image_data, message.image_data
                )
            except InvalidReferenceImage as exc:
                # Its text already reads "invalid image: ...".
                await self._acknowledge(SetImageAckMessage(False, str(exc)))
                return
            except RuntimeError:
                await self._acknowledge(SetImageAckMessage(False, "the server is shutting down"))
                return
            except Exception as exc:
                # A decoder failure nobody foresaw still owes the client its ack.
                _log.exception("session %s: image decoding failed", self.session_id)
                await self._acknowledge(SetImageAckMessage(False, f"invalid image: {exc}"))
                return
        await self._apply(prompt, enhance, image)
        await self._acknowledge(SetImageAckMessage(True, None))

    async def _apply(self, prompt: str | None, enhance: bool, image: ReferenceImage | None) -> None:
        self.prompt, self.enhance, self.image = prompt, enhance, image
        await self.pipeline.set_effect(effect_for(prompt, image))
        self._state_accepted = True
        self.pipeline.open_input()
        self.on_changed()

    async def _acknowledge(self, ack: ServerMessage) -> None:
        faults = self.context.faults
        if faults.acks_withheld:
            _log.info("session %s: withholding %s (fault)", self.session_id, ack.type)
        elif faults.ack_delay > 0:
            # Sent from a task so that the session keeps reading while the ack is late.
            self.spawn(self._send_later(ack, faults.ack_delay), "late-ack")
        else:
            await self.channel.send(ack)

    async def _send_later(self, message: ServerMessage, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.channel.send(message)

    # ------------------------------------------------------------------ choosing a transport

    def _transport_refusal(self, wanted: Transport, kind: str) -> str | None:
        """Why a ``kind`` message asking for ``wanted`` is refused, or None if it may proceed."""
        if wanted not in self.context.transports:
            return unknown_type_error(kind)
        if self.transport is not None and self.transport != wanted:
            return (
                f"unexpected {kind}: this session already uses the {self.transport} transport; "
                f"open a new session for {wanted}"
            )
        return None

    def webrtc_refusal(self, kind: str) -> str | None:
        return self._transport_refusal("webrtc", kind)

    # ------------------------------------------------------------------ LiveKit

    async def _join(self, message: LiveKitJoinMessage) -> None:
        refusal = self._transport_refusal("livekit", message.type)
        if refusal is None and self.transport is not None:
            refusal = "unexpected livekit_join: this session already joined; one room per session"
        if refusal is not None:
            await self.channel.send_error(refusal)
            return
        self.transport = "livekit"
        self.on_changed()
        if message.passthrough is True and not self._state_accepted:
            # JS 0.1.x says so when its caller set no initial state, and sends none.
            await self._apply(None, True, None)
        wait = self.context.faults.take_queue_slot()
        if wait is None:
            await self._open_room()
        else:
            # From a task, so that the session keeps reading (its state, a close) while queued.
            self.spawn(self._queue_then_open_room(wait), "queue")

    async def _queue_then_open_room(self, seconds: float) -> None:
        queue = self.context.queue
        queue.append(self.session_id)
        self.on_changed()
        loop = asyncio.get_running_loop()
        admitted_at = loop.time() + seconds
        _log.info("session %s: queued for %.1fs (fault)", self.session_id, seconds)
        try:
            while True:
                position = queue.index(self.session_id) + 1
                await self.channel.send(QueuePositionMessage(position, len(queue)))
                remaining = admitted_at - loop.time()
                if remaining <= QUEUE_REPORT_INTERVAL:
                    await asyncio.sleep(max(0.0, remaining))
                    break
                await asyncio.sleep(QUEUE_REPORT_INTERVAL)
        finally:
            queue.remove(self.session_id)
            self.on_changed()
        await self._open_room()

    async def _open_room(self) -> None:
        ticket = self.context.rooms.open_room(
            self.session_id,
            PipelineMedia(self.pipeline, self.relay),
            public_url=self.room_base_url,
        )
        self.room_name = ticket.room_name
        self.on_changed()
        await self.channel.send(
            LiveKitRoomInfoMessage(
                ticket.livekit_url, ticket.token, ticket.room_name, ticket.session_id
            )
        )

    # ------------------------------------------------------------------ WebRTC

    async def before_offer(self) -> None:
        self.transport = "webrtc"
        if not self._state_accepted:
            # What the service does for a JS client <= 0.0.47, which offers before any state.
            _log.info("session %s: offer before any initial state: passthrough", self.session_id)
            await self._apply(None, True, None)

    def trickles_candidates(self) -> bool:
        return self.context.faults.trickle_candidates

    def attach_tracks(self, pc: RTCPeerConnection) -> None:
        video = None
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None:
                self.pipeline.attach_input(transceiver.receiver.track)
            if transceiver.kind == "video" and video is None:
                video = transceiver
        if video is None:
            raise ValueError("the offer has no video; add a sendrecv video track")
        pc.addTrack(self.relay.subscribe(self.pipeline.output, buffered=False))

    async def before_answer(self) -> None:
        await self.channel.send(
            SessionIdMessage(self.session_id, self.server_ip, self.context.port)
        )

    def _first_frame_sent(self) -> None:
        self._generation_started_at = asyncio.get_running_loop().time()
        self.spawn(self._report_generation(self._generation_started_at), "ticks")
        self.on_changed()

    async def _report_generation(self, started_at: float) -> None:
        await self.channel.send(GenerationStartedMessage())
        loop = asyncio.get_running_loop()
        elapsed = 0
        while True:
            elapsed += 1
            # Scheduled from the start time, so ticks do not drift on a busy machine.
            await asyncio.sleep(max(0.0, started_at + elapsed - loop.time()))
            await self.channel.send(GenerationTickMessage(elapsed))

    # ------------------------------------------------------------------ ending

    def finish(self, reason: str, code: int = WSCloseCode.OK) -> asyncio.Task[None]:
        """End the session the way the service does: ``generation_ended`` with ``reason`` (one
        of :data:`~decart_sync._protocol.GENERATION_END_REASONS`), then a close with ``code``."""
        return self.end(
            final=GenerationEndedMessage(self.seconds, reason), code=code, reason_text=reason
        )

    async def _end_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.finish("timeout")

    async def fail_media(self) -> bool:
        """End the session's media as a network failure would: its peer connection closes, or
        its room does (which ends the session, as a closed peer connection does). False if it
        has no media yet."""
        if self.link is not None:
            await self.link.close()
            return True
        if self.room_name is not None:
            await self.context.rooms.close_room(self.room_name)
            self.end(code=WSCloseCode.INTERNAL_ERROR, reason_text="room closed")
            return True
        return False

    async def on_cleanup(self) -> None:
        if self.room_name is not None:
            # Its participants are sent away before the pipeline they read stops.
            await self.context.rooms.close_room(self.room_name)
        await self.pipeline.close()
        for viewer in list(self.viewers):
            viewer.end(code=WSCloseCode.OK, reason_text="the session ended")


class ViewerSession(SignalingSession):
    """A subscriber: receives what the producer receives; read-only."""

    role: ClassVar[str] = "viewer"

    def __init__(self, channel: SignalingChannel, producer: ProducerSession) -> None:
        super().__init__(channel, producer.context.bind_host)
        self.producer = producer
        channel.label = f"viewer of session {producer.session_id} ({channel.label})"

    async def on_control(self, message: ClientMessage) -> None:
        await self.channel.send_error(SUBSCRIBER_CONTROL)

    def trickles_candidates(self) -> bool:
        return self.producer.context.faults.trickle_candidates

    def attach_tracks(self, pc: RTCPeerConnection) -> None:
        video = None
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None:
                # A viewer should send nothing, but whatever it sends is read and dropped.
                self.spawn(read_track(transceiver.receiver.track), "drain")
            if transceiver.kind == "video" and video is None:
                video = transceiver
        if video is None:
            raise ValueError("the offer has no video; add a recvonly video transceiver")
        producer = self.producer
        pc.addTrack(producer.relay.subscribe(producer.pipeline.output, buffered=False))

    def on_changed(self) -> None:
        self.producer.on_changed()

    async def on_cleanup(self) -> None:
        self.producer.viewers.discard(self)
