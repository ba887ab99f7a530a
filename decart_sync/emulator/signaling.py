"""The server end of a signaling WebSocket, and what producer and viewer sessions share.

:class:`SignalingSession` reads the client's messages one at a time, strictly
(:func:`~decart_sync._protocol.parse_client_message`): anything malformed is answered with an
``error`` message and the session carries on. It handles the WebRTC messages (one ``offer`` per
session; the client's trickled ``ice-candidate``\\ s, a browser's final ``null`` included) unless
its subclass refuses them (a session that chose a LiveKit room), and leaves the control messages
to its subclass. The server trickles nothing back: its answer's SDP
carries its candidates, and Decart's official clients fail on a server ``ice-candidate`` or
``ready`` (protocol section 2); only a fault turns trickling on. Every ``error`` sent is logged at
INFO, so a failing client can be diagnosed from the emulator's log alone. However a session ends
(the client leaves, a fault, a time limit, server shutdown), :meth:`SignalingSession.run` closes
its peer connection and cancels its tasks before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, ClassVar

from aiohttp import WSCloseCode, WSMsgType, web
from aiortc import RTCIceCandidate, RTCPeerConnection

from decart_sync._ice import parse_candidate
from decart_sync._protocol import (
    CAPACITY_ERROR,
    CONCURRENCY_LIMIT_ERROR,
    AnswerMessage,
    ClientMessage,
    EndOfCandidatesMessage,
    ErrorMessage,
    IceCandidateMessage,
    OfferMessage,
    ProtocolViolation,
    ServerMessage,
    parse_client_message,
)
from decart_sync._redact import get_logger
from decart_sync._tasks import TaskSet
from decart_sync.emulator.peer import PeerLink

_log = get_logger(__name__)

#: The largest signaling message accepted; a bigger one closes the WebSocket with 1009.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# How long a closing handshake may take before the connection is cut.
CLOSE_TIMEOUT = 2.0


def close_code_for(error: str) -> int:
    """The WebSocket close code after a rejection with ``error``: 1013 (try again later) for
    the capacity and concurrency-limit errors, 1008 (policy violation) for everything else
    (auth, permission, bad request)."""
    if error.strip() in (CAPACITY_ERROR, CONCURRENCY_LIMIT_ERROR):
        return int(WSCloseCode.TRY_AGAIN_LATER)
    return int(WSCloseCode.POLICY_VIOLATION)


def new_websocket() -> web.WebSocketResponse:
    return web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT)


class SignalingChannel:
    """Sends protocol messages on one WebSocket; sending on a closed one is a no-op.

    ``label`` names the connection in the log (role, client address, session id once known).
    """

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, role: str) -> None:
        self.ws = ws
        self._transport = request.transport
        self._send_lock = asyncio.Lock()
        self.label = f"{role} connection from {request.remote}"

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, message: ServerMessage) -> bool:
        """Send ``message``; False if the connection is gone."""
        if self.ws.closed:
            return False
        try:
            async with self._send_lock:
                await self.ws.send_str(message.to_json())
        except (ConnectionError, RuntimeError) as exc:
            _log.debug("could not send %s: %s", message.type, exc)
            return False
        return True

    async def send_error(self, text: str) -> bool:
        # The logger redacts secrets; error texts name no key anyway.
        _log.info("%s: sending error: %s", self.label, text)
        return await self.send(ErrorMessage(text))

    async def close(self, code: int = WSCloseCode.OK, reason: str = "") -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def reject(self, error: str) -> None:
        """Tell the client why it may not proceed, then close with the matching code."""
        await self.send_error(error)
        await self.close(close_code_for(error), error)

    def abort(self) -> None:
        """Cut the connection without a closing handshake, as a network failure would."""
        if self._transport is not None:
            self._transport.abort()


class SignalingSession:
    """One client's signaling WebSocket and peer connection. Subclasses say what the session
    sends and receives; this class runs the conversation and cleans up after it."""

    role: ClassVar[str] = "session"

    def __init__(self, channel: SignalingChannel, bind_host: str) -> None:
        self.channel = channel
        self.link: PeerLink | None = None
        self._bind_host = bind_host
        # Candidates (None: end of candidates) that arrived before the offer was applied.
        self._early_candidates: list[RTCIceCandidate | None] = []
        #: Valid candidates the client trickled (end-of-candidates markers not counted).
        self.candidates_received = 0
        self._tasks = TaskSet("decart-emulator")
        self._end_task: asyncio.Task[None] | None = None
        self._cleaned_up = False

    # ------------------------------------------------------------------ subclass hooks

    async def before_offer(self) -> None:
        """Called when an offer arrives, before it is applied."""

    def webrtc_refusal(self, kind: str) -> str | None:
        """The ``error`` to answer a WebRTC message (``offer``, ``ice-candidate``) with instead
        of handling it, or None to handle it."""
        return None

    def trickles_candidates(self) -> bool:
        """Whether to send the answer's candidates as ``ice-candidate`` messages too (a fault;
        the service does not)."""
        return False

    def attach_tracks(self, pc: RTCPeerConnection) -> None:
        """Add the outgoing tracks and take the incoming ones, between offer and answer."""
        raise NotImplementedError

    async def before_answer(self) -> None:
        """Sent just before the answer."""

    async def on_control(self, message: ClientMessage) -> None:
        """A ``prompt`` or ``set_image`` message."""
        raise NotImplementedError

    async def on_cleanup(self) -> None:
        """Release what the subclass holds; called once, after the peer connection closed."""

    def on_changed(self) -> None:
        """The session's observable state changed."""

    # ------------------------------------------------------------------ running

    @property
    def ended(self) -> bool:
        return self._end_task is not None or self._cleaned_up or self.channel.closed

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` as part of this session: it is cancelled when the session ends."""
        return self._tasks.spawn(coro, f"{self.role}-{what}")

    async def run(self) -> None:
        """Serve the client until the WebSocket closes, then clean up."""
        try:
            async for msg in self.channel.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self.channel.send_error(
                        "invalid message: binary frames are not part of the protocol; "
                        "send JSON text"
                    )
                elif msg.type == WSMsgType.ERROR:
                    _log.debug("%s WebSocket error: %s", self.role, self.channel.ws.exception())
                    break
        finally:
            await self.cleanup()

    async def _handle_text(self, text: str) -> None:
        try:
            message = parse_client_message(text)
        except ProtocolViolation as exc:
            await self.channel.send_error(str(exc))
            return
        try:
            if isinstance(message, (OfferMessage, IceCandidateMessage, EndOfCandidatesMessage)):
                refusal = self.webrtc_refusal(message.type)
                if refusal is not None:
                    await self.channel.send_error(refusal)
                elif isinstance(message, OfferMessage):
                    await self._on_offer(message)
                else:
                    await self._on_candidate(message)
            else:
                await self.on_control(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug here must cost the client one message, not the server its session.
            _log.exception("%s failed to handle a %r message", self.role, message.type)
            await self.channel.send_error(f"internal error handling '{message.type}': {exc}")

    async def _on_offer(self, message: OfferMessage) -> None:
        if self.link is not None:
            await self.channel.send_error(
                "unexpected offer: this session already has a peer connection; "
                "open a new session to renegotiate"
            )
            return
        await self.before_offer()
        link = PeerLink(self._bind_host, self._peer_connection_ended)
        try:
            answer = await link.answer(message.sdp, self.attach_tracks)
        except asyncio.CancelledError:
            await link.close()
            raise
        except Exception as exc:
            await link.close()
            await self.channel.send_error(f"invalid offer: {exc or type(exc).__name__}")
            return
        self.link = link
        for candidate in self._early_candidates:
            await self._add_candidate(candidate)
        self._early_candidates.clear()
        await self.before_answer()
        await self.channel.send(AnswerMessage(answer))
        if self.trickles_candidates():
            for local in link.answer_candidates():
                await self.channel.send(IceCandidateMessage(local))
        self.on_changed()

    async def _on_candidate(self, message: IceCandidateMessage | EndOfCandidatesMessage) -> None:
        if isinstance(message, EndOfCandidatesMessage):
            candidate = None
        else:
            try:
                candidate = parse_candidate(message.candidate)
            except ValueError as exc:
                await self.channel.send_error(f"invalid ICE candidate: {exc}")
                return
        if candidate is not None:
            self.candidates_received += 1
        if self.link is None:
            # Arrived before the offer was applied: add it once there is a remote description.
            self._early_candidates.append(candidate)
        else:
            await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        assert self.link is not None
        try:
            await self.link.add_candidate(candidate)
        except Exception as exc:
            await self.channel.send_error(f"invalid ICE candidate: {exc}")

    def _peer_connection_ended(self, link: PeerLink) -> None:
        # The session ends with its peer connection (protocol section 3, step 7); a link that
        # failed to answer an offer was never the session's.
        if link is self.link and not self.ended:
            self.end(code=WSCloseCode.INTERNAL_ERROR, reason_text="peer connection closed")

    # ------------------------------------------------------------------ ending

    def end(
        self,
        *,
        final: ServerMessage | None = None,
        code: int = WSCloseCode.OK,
        reason_text: str = "",
        abrupt: bool = False,
    ) -> asyncio.Task[None]:
        """End the session: send ``final`` (if any), then close the WebSocket with ``code``, or,
        if ``abrupt``, cut it without a word. Idempotent; the returned task finishes when the
        WebSocket is closed."""
        if self._end_task is None:
            self._end_task = asyncio.ensure_future(self._close(final, code, reason_text, abrupt))
            self._end_task.set_name(f"decart-emulator-{self.role}-end")
            self.on_changed()
        return self._end_task

    async def _close(
        self, final: ServerMessage | None, code: int, reason: str, abrupt: bool
    ) -> None:
        if abrupt:
            self.channel.abort()
            return
        if final is not None:
            await self.channel.send(final)
        await self.channel.close(code, reason)

    async def cleanup(self) -> None:
        """Release everything; called once when :meth:`run` returns."""
        if self._cleaned_up:
            return
        self._cleaned_up = True
        await self._tasks.cancel_all()
        if self.link is not None:
            await self.link.close()
        await self.on_cleanup()
        if self._end_task is not None:
            # Let a closing handshake that is under way finish; it is bounded by CLOSE_TIMEOUT.
            await asyncio.wait([self._end_task], timeout=CLOSE_TIMEOUT + 1)
        elif not self.channel.closed:
            await self.channel.close()
        self.on_changed()
