"""One realtime connection: the control WebSocket plus one media transport.

Lives entirely on the loop thread. :meth:`Connection.open` walks the protocol's order (section 3
for a producer, section 4 for a viewer) and returns once the media is connected; afterwards the
connection reports what happens to a :class:`ConnectionListener` and carries control messages
with their acknowledgements. A connection is used once: a reconnect makes a new one.

The control channel is the same whatever carries the media: state changes and their
acknowledgements, errors and generation events are handled here. The media is a
:class:`MediaTransport` (``_webrtc.WebRTCMedia``: the legacy offer/answer peer connection), which
runs its own part of the opening order and takes the messages that are its own.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlsplit

import attrs
from aiortc.mediastreams import MediaStreamTrack

from decart_sync import _protocol
from decart_sync._protocol import Omitted
from decart_sync._redact import get_logger
from decart_sync._tasks import TaskSet
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    InsufficientCreditsError,
    SessionClosedError,
    WebRTCError,
)
from decart_sync.realtime._signaling import SignalingChannel
from decart_sync.realtime._transports import LegacyServer
from decart_sync.realtime._webrtc import WebRTCMedia

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

    @property
    def is_passthrough(self) -> bool:
        """No prompt and no image: the model passes the video through."""
        return self.prompt is None and self.image_b64 is None

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
        self, image_b64: str | None, prompt: str | Omitted | None, enhance: bool | Omitted
    ) -> AckedState:
        return AckedState(
            prompt=self.prompt if isinstance(prompt, Omitted) else prompt,
            enhance=self.enhance if isinstance(enhance, Omitted) else enhance,
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
    def on_session(
        self, connection: Connection, session_id: str, subscribe_token: str | None
    ) -> None: ...
    def on_queue_position(
        self, connection: Connection, message: _protocol.QueuePositionMessage
    ) -> None: ...
    def on_generation_ended(
        self, connection: Connection, message: _protocol.GenerationEndedMessage
    ) -> None: ...
    def on_tick(self, connection: Connection, message: _protocol.GenerationTickMessage) -> None: ...
    def on_server_error(self, connection: Connection, error: DecartSDKError) -> None: ...
    def on_video_frame(self, connection: Connection, frame: Any) -> None: ...
    def on_source_error(self, error: DecartSDKError) -> None: ...
    def on_lost(self, connection: Connection, error: DecartSDKError) -> None: ...


class MediaTransport(Protocol):
    """What carries one connection's video: set up during :meth:`Connection.open`, then
    reporting through the connection's media methods (``media_connected``, ``deliver_frame``,
    ``media_lost``)."""

    @property
    def name(self) -> str:
        """``webrtc`` or ``livekit``."""

    async def connect(self, initial: AckedState | None) -> None:
        """Run this transport's part of the opening order (a producer's initial state included,
        through :meth:`Connection.establish`), up to where it waits to be connected."""

    def on_message(self, message: _protocol.ServerMessage) -> bool:
        """Take a server message that belongs to this transport; False for any other."""

    async def round_trip_time(self) -> float | None: ...

    async def close(self) -> None:
        """Release everything it opened. Idempotent; reports nothing."""


def _ack_limit(message: StateMessage) -> float:
    """How long the protocol waits for this message's acknowledgement (section 7)."""
    if isinstance(message, _protocol.PromptMessage):
        return _protocol.PROMPT_ACK_TIMEOUT
    return _protocol.SET_IMAGE_ACK_TIMEOUT


@attrs.frozen
class ConnectionPlan:
    """What each connection of one session is opened with; a reconnect opens the same plan."""

    role: Role
    url: str | None  # the control WebSocket; None for a LiveKit viewer, which has none
    model: ModelDefinition | None = None
    source: VideoSource | None = None  # a producer's input
    ice_servers: Any = None
    media_executor: concurrent.futures.Executor | None = None
    video_codec: str | None = None
    #: ``webrtc`` or ``livekit`` (``_transports.choose`` decides, from what the caller asked).
    transport: str = "webrtc"
    #: With ``livekit``: carry on with ``webrtc`` when the server does not know ``livekit_join``.
    fallback: bool = False
    #: A LiveKit viewer's room credentials, fetched afresh for each connection.
    viewer_ticket: Any = None


class _NoListener:
    """Where a closed connection's late callbacks go: nowhere."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _ignore


def _ignore(*args: object) -> None:
    pass


_NO_LISTENER = cast(ConnectionListener, _NoListener())


class Connection:
    """A producer's or a viewer's single connection attempt and, if it opens, its life."""

    def __init__(self, plan: ConnectionPlan, listener: ConnectionListener) -> None:
        self.role = plan.role
        self.plan = plan
        self.host = urlsplit(plan.url or "").hostname or ""
        self._listener = listener
        self._signaling: SignalingChannel | None = None
        self._tasks = TaskSet("decart-connection")
        # The connect phase's outcome; an `error` message or a drop fails it.
        self._opening: asyncio.Future[None] | None = None
        # Acks: prompt acks are matched by prompt text; one set_image is outstanding at a time.
        self._prompt_acks: dict[str, collections.deque[_PendingAck]] = {}
        self._image_ack: _PendingAck | None = None
        self._open = False
        self._ended = False
        self._server_error: DecartSDKError | None = None
        self.session_id: str | None = None
        self._media: MediaTransport = self._media_for(plan.transport)

    def _media_for(self, transport: str) -> MediaTransport:
        if transport == "livekit":
            # Imported here: the livekit package is needed only by sessions that use it.
            from decart_sync.realtime._livekit import LiveKitMedia

            return LiveKitMedia(self, self.plan.viewer_ticket)
        return WebRTCMedia(self)

    @property
    def transport(self) -> str:
        return self._media.name

    # ------------------------------------------------------------------ opening

    async def open(self, initial: AckedState | None) -> None:
        """Run the protocol until the media is connected. The caller bounds the total time
        (cancelling this coroutine closes everything it opened)."""
        self._opening = self.new_waiter()
        try:
            if self.plan.url is not None:
                self._signaling = await SignalingChannel.open(
                    self.plan.url,
                    timeout=30.0,
                    on_message=self._on_message,
                    on_closed=self._on_signaling_closed,
                )
            await self._connect_media(initial)
            await self.race(self._opening)
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

    async def _connect_media(self, initial: AckedState | None) -> None:
        from_livekit = self._media.name == "livekit"
        try:
            await self._media.connect(initial)
        except Exception as exc:
            if not (from_livekit and self.plan.fallback and isinstance(exc, LegacyServer)):
                raise
            # Same WebSocket, the legacy order: the server already has (or will acknowledge)
            # the state sent with the join; sending it again only repeats what it applied.
            _log.info("the server does not know livekit_join; using the webrtc transport")
            await self._media.close()
            self._media = self._media_for("webrtc")
            await self._media.connect(initial)

    async def establish(self, initial: AckedState | None) -> None:
        """Send a producer's initial state and wait for its acknowledgement, as long as the
        protocol allows (section 7)."""
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

    # ------------------------------------------------------------------ for the media

    def new_waiter(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def race(self, waiter: asyncio.Future[Any]) -> Any:
        """Wait for ``waiter`` unless the connect fails first (error message, drop)."""
        assert self._opening is not None
        if waiter is self._opening:
            return await asyncio.shield(waiter)
        done, _ = await asyncio.wait({waiter, self._opening}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        self._opening.result()  # raises the failure
        raise WebRTCError("connection ended while connecting")

    async def send(self, message: _protocol.ClientMessage) -> None:
        if self._signaling is None:
            raise SessionClosedError("the connection is closed")
        await self._signaling.send(message)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        self._tasks.spawn(coro, what)

    def open_source_track(self) -> MediaStreamTrack:
        """A producer's input as a new track, at the model's size and rate."""
        source, model = self.plan.source, self.plan.model
        assert source is not None and model is not None
        return source.open_track(
            width=model.width,
            height=model.height,
            fps=model.fps,
            executor=self.plan.media_executor,
            on_error=self._listener.on_source_error,
        )

    def media_connected(self) -> None:
        if self._ended:
            return
        if self._opening is not None and not self._opening.done():
            self._opening.set_result(None)
        self._listener.on_connection_state(self, "connected")

    def media_lost(self, error: DecartSDKError) -> None:
        if not self._ended:
            self._lose(error)

    def deliver_frame(self, frame: Any) -> None:
        if not self._ended:
            self._listener.on_video_frame(self, frame)

    def room_assigned(self, info: _protocol.LiveKitRoomInfoMessage) -> None:
        """A LiveKit room for this connection: its session id, and the viewers' token."""
        self.session_id = info.session_id
        token = _protocol.RoomToken(info.room_name).encode() if self.role == "producer" else None
        self._listener.on_session(self, info.session_id, token)

    def queue_position(self, message: _protocol.QueuePositionMessage) -> None:
        self._listener.on_queue_position(self, message)

    # ------------------------------------------------------------------ incoming

    def _on_message(self, message: _protocol.ServerMessage) -> None:
        if self._ended or self._media.on_message(message):
            return
        if isinstance(message, _protocol.SessionIdMessage):
            self.session_id = message.session_id
            token = _protocol.SubscribeToken(
                message.session_id, message.server_ip, message.server_port
            )
            self._listener.on_session(self, message.session_id, token.encode())
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
            # A disconnect is the session ending as asked: nothing for a user to act on.
            level = logging.DEBUG if message.reason == "disconnect" else logging.INFO
            _log.log(level, "generation ended after %ss: %s", message.seconds, message.reason)
            self._listener.on_generation_ended(self, message)
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
        """Seconds, as the media transport measures it; None until it knows."""
        return await self._media.round_trip_time()

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
        await self._media.close()
        signaling, self._signaling = self._signaling, None
        if signaling is not None:
            await signaling.close()
        await self._tasks.cancel_all(timeout=2)
        # A closed connection's own reference cycles (media, tasks, the peer connection) may wait
        # for the cycle collector; they must not keep the session's controller, frame hub and
        # source (a whole frame or more, in native memory) alive with them.
        self._listener = _NO_LISTENER
        self.plan = attrs.evolve(self.plan, source=None)
