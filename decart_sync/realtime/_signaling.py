"""The signaling WebSocket of one connection, over websocket-client.

websocket-client is blocking: the process's shared reader (:mod:`._signaling_reader`, one thread
for every connection) reads incoming messages and hands each parsed one to the loop thread
(``_loop.hand_to_loop``). Everything else (opening, sending, closing) is called from the loop
thread as coroutines; the blocking parts of those run in the loop's executor so the loop never
waits on the network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import websocket

from decart_sync import _protocol
from decart_sync._loop import hand_to_loop
from decart_sync._redact import get_logger, redact
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    InvalidAPIKeyError,
    SignalingError,
    WebRTCError,
)
from decart_sync.realtime._signaling_reader import shared_reader

_log = get_logger(__name__)

# Messages larger than this are written from the executor, not the loop thread: a multi-megabyte
# base64 image would otherwise hold the loop for the duration of the socket write.
_INLINE_SEND_LIMIT = 64 * 1024
# How long close() waits for the server's close frame before cutting the socket.
_CLOSE_GRACE = 1.0

MessageHandler = Callable[[_protocol.ServerMessage], None]
CloseHandler = Callable[["DecartSDKError | None"], None]


def _handshake_error(exc: BaseException, url: str) -> DecartSDKError:
    where = redact(url.split("?", 1)[0])
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = exc.status_code
        if status in (401, 403):
            return InvalidAPIKeyError(f"the server refused the API key (HTTP {status}) at {where}")
        return WebRTCError(f"WebSocket handshake with {where} failed: HTTP {status}")
    if isinstance(exc, (TimeoutError, websocket.WebSocketTimeoutException)):
        return DecartTimeoutError(f"timed out opening the WebSocket to {where}")
    return WebRTCError(f"could not open the WebSocket to {where}: {redact(str(exc))}")


class SignalingChannel:
    """One open signaling WebSocket. Create with :meth:`open` on the loop thread."""

    def __init__(
        self,
        ws: websocket.WebSocket,
        loop: asyncio.AbstractEventLoop,
        on_message: MessageHandler,
        on_closed: CloseHandler,
    ) -> None:
        self._ws = ws
        self._loop = loop
        self._on_message = on_message
        self._on_closed = on_closed
        self._send_lock = asyncio.Lock()
        self._closing = False
        self._closed_reported = False
        self._ended = threading.Event()  # the reader saw the end (close frame or failure)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        timeout: float,
        on_message: MessageHandler,
        on_closed: CloseHandler,
        origin: str | None = None,
    ) -> SignalingChannel:
        """Open the WebSocket (in the executor) and hand it to the shared reader."""
        loop = asyncio.get_running_loop()

        def connect() -> websocket.WebSocket:
            ws = websocket.create_connection(
                url,
                timeout=timeout,
                enable_multithread=True,
                origin=origin,
                suppress_origin=origin is None,
            )
            return ws

        try:
            ws = await asyncio.wait_for(loop.run_in_executor(None, connect), timeout + 1)
        except asyncio.TimeoutError:
            raise _handshake_error(TimeoutError(), url) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise _handshake_error(exc, url) from None
        channel = cls(ws, loop, on_message, on_closed)
        shared_reader().add(ws, channel._on_text, channel._on_end)
        return channel

    # ------------------------------------------------------------------ reader thread side

    def _on_text(self, text: str) -> bool:
        """A message from the server (reader thread); False once nobody listens."""
        try:
            message = _protocol.parse_server_message(text)
        except _protocol.ProtocolViolation as exc:
            # What could not be read may be the answer or the ack something waits for, so the
            # connection can no longer be trusted: it ends as lost, and the session reconnects.
            _log.warning("the server sent a malformed message: %s", exc)
            self._ended.set()
            self._post(
                self._report_closed, SignalingError(f"the server sent a malformed message: {exc}")
            )
            return False
        return message is None or self._post(self._on_message, message)

    def _on_end(self, failure: BaseException | None) -> None:
        """The connection is over (reader thread): a close frame, or a failure."""
        self._ended.set()
        error: DecartSDKError | None = None
        if failure is not None and not self._closing:
            error = WebRTCError(f"signaling connection lost: {redact(str(failure)) or 'closed'}")
        self._post(self._report_closed, error)

    def _post(self, callback: Callable[..., None], *args: object) -> bool:
        return hand_to_loop(self._loop, callback, *args)

    def _report_closed(self, error: DecartSDKError | None) -> None:
        if self._closed_reported:
            return
        self._closed_reported = True
        if not self._closing:
            self._on_closed(error)

    # ------------------------------------------------------------------ loop-side API

    @property
    def is_open(self) -> bool:
        return not self._closing and not self._closed_reported

    async def send(self, message: _protocol.ClientMessage) -> None:
        """Send one message; messages go out in the order their sends started."""
        text = message.to_json()
        async with self._send_lock:
            if not self.is_open:
                raise WebRTCError("signaling connection is closed")
            try:
                if len(text) <= _INLINE_SEND_LIMIT:
                    self._ws.send(text)
                else:
                    await asyncio.get_running_loop().run_in_executor(None, self._ws.send, text)
            except (websocket.WebSocketException, OSError) as exc:
                raise WebRTCError(f"signaling send failed: {redact(str(exc))}") from None

    async def close(self) -> None:
        """Close politely, then for sure; the reader thread is joined. Idempotent."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()

        def shut() -> None:
            try:
                if self._ws.connected and not self._ended.is_set():
                    self._ws.send_close()
                    # The server answers with its own close frame, which the reader sees.
                    self._ended.wait(_CLOSE_GRACE)
            except (websocket.WebSocketException, OSError):
                pass
            shared_reader().remove(self._ws)
            self._ws.abort()  # type: ignore[no-untyped-call]
            self._ws.shutdown()  # type: ignore[no-untyped-call]

        await loop.run_in_executor(None, shut)
