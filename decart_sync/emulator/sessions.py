"""Producer and viewer sessions: what happens on one realtime or subscribe WebSocket.

A :class:`ProducerSession` follows protocol section 3: it accepts control messages (``prompt``,
``set_image``) at any time, and an ``offer`` once an initial state was accepted or, as old JS
clients (<= 0.0.47) send it, before any state, which then means passthrough. After the offer it
sends ``session_id`` and ``answer`` (whose SDP carries the candidates; no ``ready``); when the
first transformed frame goes out, ``generation_started`` and then a ``generation_tick`` every
second. A time limit ends it with ``generation_ended`` reason ``timeout``.
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
from typing import ClassVar, Final, Literal

import attrs
from aiohttp import WSCloseCode
from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay

from decart_sync._protocol import (
    ClientMessage,
    GenerationEndedMessage,
    GenerationStartedMessage,
    GenerationTickMessage,
    PromptAckMessage,
    PromptMessage,
    ServerMessage,
    SessionIdMessage,
    SetImageAckMessage,
    SetImageMessage,
)
from decart_sync._redact import get_logger
from decart_sync.emulator.auth import Grant
from decart_sync.emulator.effects import (
    MAX_IMAGE_BYTES,
    InvalidReferenceImage,
    ReferenceImage,
    decode_reference_image,
    effect_for,
)
from decart_sync.emulator.faults import FaultPlan
from decart_sync.emulator.pipeline import FramePipeline, discard_track
from decart_sync.emulator.signaling import SignalingChannel, SignalingSession
from decart_sync.models import ModelDefinition

_log = get_logger(__name__)

SessionState = Literal["waiting_state", "negotiating", "generating", "ended"]

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


@attrs.define
class SessionContext:
    """What every session needs from its server."""

    bind_host: str
    port: int
    executor: concurrent.futures.Executor
    faults: FaultPlan
    #: Called (on the loop) whenever a session's observable state changes.
    notify: Callable[[], None]


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
    ) -> None:
        super().__init__(channel, context.bind_host)
        self.session_id = uuid.uuid4().hex
        channel.label = f"session {self.session_id} ({channel.label})"
        self.model = model
        self.grant = grant
        self.context = context
        self.server_ip = server_ip
        self.pipeline = FramePipeline(model, context.executor, self._first_frame_sent)
        self.relay = MediaRelay()
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
            subscribers=len(self.viewers),
            state=self.state,
            seconds=self.seconds,
            candidates_received=self.candidates_received,
        )

    def on_changed(self) -> None:
        self.context.notify()

    # ------------------------------------------------------------------ control messages

    async def on_control(self, message: ClientMessage) -> None:
        if isinstance(message, PromptMessage):
            await self._set_prompt(message)
        elif isinstance(message, SetImageMessage):
            await self._set_image(message)

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

    # ------------------------------------------------------------------ WebRTC

    async def before_offer(self) -> None:
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

    async def on_cleanup(self) -> None:
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
                self.spawn(discard_track(transceiver.receiver.track), "drain")
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
