"""The loop-side core of one session: its state, its current connection, reconnects, control.

A :class:`SessionController` outlives its connections. It turns what a :class:`Connection`
reports into the session's public state and events, publishes remote frames into the session's
:class:`FrameHub`, serialises control calls (so acknowledgements never cross), and after an
unexpected drop reconnects in the background with the acknowledged state restored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from decart_sync import _protocol
from decart_sync._redact import get_logger
from decart_sync._tasks import TaskSet
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    SessionClosedError,
    WebRTCError,
)
from decart_sync.realtime._connection import AckedState, Connection, ConnectionPlan, StateMessage
from decart_sync.realtime._events import EventEmitter
from decart_sync.realtime._retry import ReconnectPolicy, is_permanent
from decart_sync.realtime._stats import RateMeter

if TYPE_CHECKING:
    from decart_sync.realtime._frames import FrameHub

_log = get_logger(__name__)

StateListener = Callable[[str], None]


def as_sdk_error(exc: BaseException) -> DecartSDKError:
    if isinstance(exc, DecartSDKError):
        return exc
    return WebRTCError(f"connection failed: {type(exc).__name__}: {exc}")


class SessionController:
    """Owns one session's connections; every method runs on the loop thread."""

    def __init__(
        self,
        *,
        plan: ConnectionPlan,
        hub: FrameHub,
        emitter: EventEmitter,
        on_state: StateListener,
        policy: ReconnectPolicy | None = None,
        connect_timeout: float = 30.0,
        on_remote_stream: Callable[[Any], None] | None = None,
        remote_stream_handle: Callable[[], Any] | None = None,
    ) -> None:
        self.role = plan.role
        self._plan = plan
        #: The media transport of the latest connection (``webrtc`` after a fallback).
        self.transport = plan.transport
        self._hub = hub
        self._emitter = emitter
        self._on_state = on_state
        self._policy = policy or ReconnectPolicy()
        self._connect_timeout = connect_timeout
        self._on_remote_stream = on_remote_stream
        self._remote_stream_handle = remote_stream_handle
        self.state = "disconnected"
        self.session_id: str | None = None
        self.subscribe_token: str | None = None
        self.acked = AckedState()
        self.final_error: DecartSDKError | None = None
        self.fps_out = RateMeter()
        self._connection: Connection | None = None
        self._ready: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self._control_lock: asyncio.Lock | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closed = False
        self._remote_stream_announced = False
        self._reported: DecartSDKError | None = None  # the last error emitted as it came
        self._tasks = TaskSet("decart-session")

    # ------------------------------------------------------------------ state

    def _set_state(self, state: str) -> None:
        current = self.state
        if state == current or (current == "disconnected" and state not in ("connecting",)):
            return
        # `generating` is sticky: the peer connection (re)reporting `connected` does not undo it.
        if current == "generating" and state == "connected":
            return
        self.state = state
        self._on_state(state)
        self._emitter.emit("connection_change", state)

    # ------------------------------------------------------------------ connecting

    async def start(self, initial: AckedState) -> None:
        """Open the first connection. As Decart's clients do, a failure that may pass (the
        service at capacity, a network error) is tried again with the reconnect policy's
        backoff, up to its number of attempts; a permanent one (a bad key, an unknown model,
        refused input) is not. The connect timeout bounds it all: a retry that could not
        finish in time is not started, and the last failure is raised."""
        self._ready = asyncio.Event()
        self._ended = asyncio.Event()
        self._control_lock = asyncio.Lock()
        self._set_state("connecting")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        attempt = 1
        while True:
            try:
                await self._open_bounded(initial, deadline - loop.time())
                break
            except Exception as exc:
                error = as_sdk_error(exc).locate(self.session_id, "connect")
                delay = self._policy.delay(attempt)
                if (
                    is_permanent(error)
                    or attempt >= max(1, self._policy.attempts)
                    or loop.time() + delay >= deadline
                ):
                    self.final_error = error
                    await self.close()
                    if error is exc:
                        raise
                    raise error from exc
                _log.info("connect attempt %d failed (%s); again in %.1fs", attempt, error, delay)
                self._connection = None
                attempt += 1
                await asyncio.sleep(delay)
            except BaseException:
                await self.close()
                raise
        self.acked = initial

    async def _open_bounded(self, initial: AckedState, limit: float | None = None) -> None:
        limit = self._connect_timeout if limit is None else limit
        connection = Connection(self._plan, listener=self)
        self._connection = connection
        try:
            await asyncio.wait_for(connection.open(initial), limit)
            self.transport = connection.transport
        except DecartSDKError:
            raise
        except asyncio.TimeoutError:
            raise DecartTimeoutError(
                f"could not connect within {self._connect_timeout:g}s; pass a larger timeout= "
                "or check that the server is reachable"
            ) from None
        except Exception as exc:
            # Whatever a library raised while connecting reaches the user as the SDK's own.
            raise as_sdk_error(exc) from exc
        assert self._ready is not None
        self._ready.set()

    # ------------------------------------------------------------------ listener (Connection)

    def _current(self, connection: Connection) -> bool:
        return connection is self._connection and not self._closed

    def on_connection_state(self, connection: Connection, state: str) -> None:
        if self._current(connection):
            self._set_state(state)

    def on_session(
        self, connection: Connection, session_id: str, subscribe_token: str | None
    ) -> None:
        if not self._current(connection):
            return
        self.session_id = session_id
        if self.role == "producer" and subscribe_token is not None:
            self.subscribe_token = subscribe_token

    def on_queue_position(
        self, connection: Connection, message: _protocol.QueuePositionMessage
    ) -> None:
        if self._current(connection):
            self._emitter.emit("queue_position", message)

    def on_generation_ended(
        self, connection: Connection, message: _protocol.GenerationEndedMessage
    ) -> None:
        if self._current(connection):
            self._emitter.emit("generation_ended", message)

    def on_tick(self, connection: Connection, message: _protocol.GenerationTickMessage) -> None:
        if self._current(connection):
            self._emitter.emit("generation_tick", message)

    def on_server_error(self, connection: Connection, error: DecartSDKError) -> None:
        if self._current(connection):
            self._reported = error.locate(self.session_id, "session")
            self._emitter.emit("error", error)

    def on_source_error(self, error: DecartSDKError) -> None:
        if not self._closed:
            self._emitter.emit("error", error.locate(self.session_id, "session"))

    def on_video_frame(self, connection: Connection, frame: Any) -> None:
        if not self._current(connection):
            return
        self._hub.publish(frame)
        self.fps_out.record()
        if not self._remote_stream_announced:
            self._remote_stream_announced = True
            # The handle is a weak reference to the session (the session owns this controller).
            handle = self._remote_stream_handle() if self._remote_stream_handle else None
            if self._on_remote_stream is not None:
                self._emitter.call(self._on_remote_stream, handle, "on_remote_stream")

    def on_lost(self, connection: Connection, error: DecartSDKError) -> None:
        if not self._current(connection):
            return
        _log.info("connection lost: %s", error.message)
        error.locate(self.session_id, "session")
        self._connection = None
        assert self._ready is not None
        self._ready.clear()
        self._spawn(connection.close(), "close")
        if self._policy.attempts > 0 and not is_permanent(error):
            self._reconnect_task = self._spawn(self._reconnect(error), "reconnect")
        else:
            self._spawn(self._fail(error), "fail")

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, what)

    # ------------------------------------------------------------------ reconnect

    async def _reconnect(self, error: DecartSDKError) -> None:
        self._set_state("reconnecting")
        last = error
        for attempt in range(1, self._policy.attempts + 1):
            await asyncio.sleep(self._policy.delay(attempt))
            if self._closed:
                return
            try:
                await self._open_bounded(self.acked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                last = as_sdk_error(exc).locate(self.session_id, "reconnect")
                _log.info("reconnect attempt %d failed: %s", attempt, last.message)
                self._connection = None
                if is_permanent(last):
                    break
                continue
            _log.info("reconnected on attempt %d", attempt)
            return
        await self._fail(last)

    async def _fail(self, error: DecartSDKError) -> None:
        """No connection is coming back: the session ends with ``error``."""
        if self._closed:
            return
        self.final_error = error
        if error is not self._reported:  # the server's own error was reported when it came
            self._emitter.emit("error", error)
        await self._shut(error)

    # ------------------------------------------------------------------ control

    async def control(
        self,
        message: StateMessage,
        update: Callable[[AckedState], AckedState],
        *,
        limit: float,
        what: str,
    ) -> None:
        """Send one state change on the live connection and wait for its acknowledgement, one
        change at a time per session. ``limit`` bounds it all: the wait for the calls before
        it, for a reconnect, and for the acknowledgement.

        ``self.acked`` follows what the server acknowledges, when it does: a change whose
        caller timed out but that the server applied later counts too."""
        lock = self._control_lock
        assert lock is not None

        def applied() -> None:
            self.acked = update(self.acked)

        async def exchange() -> None:
            async with lock:
                connection = await self._wait_ready()
                await connection.request(message, applied)

        try:
            await asyncio.wait_for(exchange(), limit)
        except DecartSDKError as exc:
            raise exc.locate(self.session_id, "control") from None
        except asyncio.TimeoutError:
            raise DecartTimeoutError(f"{what} was not acknowledged within {limit:g}s").locate(
                self.session_id, "control"
            ) from None

    async def _wait_ready(self) -> Connection:
        assert self._ready is not None and self._ended is not None
        while True:
            if self._closed or self._ended.is_set():
                raise self.final_error or SessionClosedError("the session is disconnected")
            if self._ready.is_set() and self._connection is not None:
                return self._connection
            ready = asyncio.ensure_future(self._ready.wait())
            ended = asyncio.ensure_future(self._ended.wait())
            try:
                await asyncio.wait({ready, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                ended.cancel()

    async def round_trip_time(self) -> float | None:
        connection = self._connection
        return await connection.round_trip_time() if connection is not None else None

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Asked-for end: no reconnect, iterators end cleanly. Idempotent."""
        await self._shut(None)

    async def _shut(self, error: DecartSDKError | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ended is not None:
            self._ended.set()
        task = self._reconnect_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        self.state = "disconnected"
        self._on_state("disconnected")
        self._emitter.emit("connection_change", "disconnected")
        self._hub.close(error)
