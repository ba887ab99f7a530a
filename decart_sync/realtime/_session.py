"""The blocking session objects users hold: :class:`RealtimeClient` and :class:`SubscribeClient`.

Every public method here is safe from any thread. Control calls validate their input in the
caller's thread, then cross to the loop thread through :class:`LoopThread` and block until the
server acknowledges (or return a ``concurrent.futures.Future`` with ``wait=False``). Frames come
out through the session's :class:`FrameHub`; events through its :class:`EventEmitter`, on the
callback pool.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from decart_sync import _allocator, _protocol
from decart_sync._loop import LoopThread, default_loop
from decart_sync._protocol import OMITTED
from decart_sync._redact import SecretText, get_logger, register_secret
from decart_sync._timeouts import limit_timeout, wait_timeout
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    InvalidAPIKeyError,
    InvalidInputError,
    LoopThreadError,
    SessionClosedError,
)
from decart_sync.models import ModelDefinition
from decart_sync.realtime._connection import AckedState, ConnectionPlan, StateMessage
from decart_sync.realtime._controller import SessionController
from decart_sync.realtime._events import ConnectionState, EventEmitter
from decart_sync.realtime._frames import (
    FrameConsumer,
    FrameFormat,
    FrameHub,
    FrameInfo,
    FramePolicy,
)
from decart_sync.realtime._images import image_base64
from decart_sync.realtime._options import (
    DEFAULT_CONNECT_TIMEOUT,
    RealtimeConnectOptions,
    SubscribeOptions,
)
from decart_sync.realtime._retry import ReconnectPolicy
from decart_sync.realtime._stats import SessionStats
from decart_sync.realtime._transports import choose
from decart_sync.types import ModelState, Prompt, SetInput

if TYPE_CHECKING:
    from decart_sync.media.sources import VideoSource

_log = get_logger(__name__)


# Extra time the blocking side waits beyond the loop-side bound, so that the loop's own, more
# precise timeout error is the one the caller sees.
_MARGIN = 2.0
_DISCONNECT_TIMEOUT = 5.0


def _check_api_key(api_key: object) -> str:
    if not isinstance(api_key, str) or not api_key.strip():
        raise InvalidAPIKeyError("api_key is missing; pass the key from DecartClient.api_key")
    register_secret(api_key)
    return SecretText(api_key.strip())


def _refuse_loop_thread(loop_thread: LoopThread) -> None:
    if loop_thread.in_loop_thread():
        raise LoopThreadError(
            "a blocking frame read on the SDK's loop thread would stop the frames it waits "
            "for; read frames from your own thread"
        )


class _StateBoard:
    """The session's connection state: written on the loop thread (before each state's event
    is posted), waited on by user threads. The controller writes here rather than through the
    session, so nothing the session owns points back at it: a closed session, with its source
    and buffers, is freed as soon as the user drops it, without waiting for the cycle
    collector (benchmarks/memory.py)."""

    def __init__(self) -> None:
        self.state = "disconnected"
        self.changed = threading.Condition()

    def set(self, state: str) -> None:
        with self.changed:
            self.state = state
            self.changed.notify_all()


class _Session:
    """What producers and viewers share: state, events, frames, stats, lifecycle."""

    _events: tuple[str, ...] = (
        "connection_change",
        "error",
        "generation_tick",
        "generation_ended",
        "queue_position",
    )

    def __init__(
        self,
        loop_thread: LoopThread,
        label: str,
        *,
        plan: ConnectionPlan,
        policy: ReconnectPolicy,
        connect_timeout: float,
        on_remote_stream: Callable[[Any], None] | None,
    ) -> None:
        self._loop_thread = loop_thread
        self._label = label
        self._board = _StateBoard()
        self._closed = False
        self._close_lock = threading.Lock()
        self._owned_source: VideoSource | None = None
        self._source: VideoSource | None = None
        self._default_consumer: FrameConsumer | None = None  # the last one made, for stats
        self._per_thread = threading.local()
        self._hub = FrameHub(blocking_guard=functools.partial(_refuse_loop_thread, loop_thread))
        self._emitter = EventEmitter(loop_thread.dispatcher.channel(label), self._events)
        self._controller = SessionController(
            plan=plan,
            hub=self._hub,
            emitter=self._emitter,
            on_state=self._board.set,
            policy=policy,
            connect_timeout=connect_timeout,
            on_remote_stream=on_remote_stream,
            remote_stream_handle=weakref.ref(self),
        )
        self._exit_closer: Callable[[], None] = lambda: None
        self._input_samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._opened_at = time.monotonic()

    # ------------------------------------------------------------------ plumbing

    @property
    def _state(self) -> str:
        return self._board.state

    def _open(self, initial: AckedState, timeout: float) -> None:
        """Run the controller's first connect; on failure release everything and re-raise."""
        weak_self = weakref.ref(self)

        def close_at_exit() -> None:
            session = weak_self()
            if session is not None:
                session.disconnect()

        self._exit_closer = close_at_exit
        try:
            self._loop_thread.run(self._controller.start(initial), timeout + _MARGIN)
        except BaseException:
            self._closed = True
            self._release_resources()
            raise
        self._loop_thread.add_exit_closer(close_at_exit)

    def _release_resources(self) -> None:
        if self._owned_source is not None:
            self._owned_source.close()
        self._hub.close()
        self._loop_thread.release()
        _allocator.session_closed()

    # ------------------------------------------------------------------ state

    def is_connected(self) -> bool:
        """Whether the session is connected (``connected`` or ``generating``)."""
        return self._state in ("connected", "generating")

    def get_connection_state(self) -> ConnectionState:
        """``connecting``, ``connected``, ``generating``, ``reconnecting`` or ``disconnected``."""
        return self._state  # type: ignore[return-value]

    def wait_for_state(self, state: ConnectionState, timeout: float | None = None) -> None:
        """Block until the session is in ``state``; :class:`DecartTimeoutError` otherwise.

        Waiting for anything but ``disconnected`` on a session that has ended raises
        :class:`SessionClosedError` at once rather than waiting out the timeout."""
        if state not in ("connecting", "connected", "generating", "reconnecting", "disconnected"):
            raise InvalidInputError(f"unknown state {state!r}")
        timeout = wait_timeout(timeout)
        _refuse_loop_thread(self._loop_thread)
        with self._board.changed:
            ok = self._board.changed.wait_for(
                lambda: (
                    self._state == state
                    or (self._state == "disconnected" and self._closed_for_good())
                ),
                timeout,
            )
            if self._state == state:
                return
        if ok:
            raise self._controller.final_error or SessionClosedError(
                f"the session ended before reaching {state!r}"
            )
        raise DecartTimeoutError(f"state {state!r} not reached within {timeout}s")

    def _closed_for_good(self) -> bool:
        return self._closed or self._controller.final_error is not None

    @property
    def transport(self) -> str:
        """How the video travels: ``livekit`` (Decart's service) or ``webrtc`` (legacy)."""
        return self._controller.transport

    @property
    def session_id(self) -> str | None:
        """The id of the current realtime inference session (None until the server sends it)."""
        return self._controller.session_id

    # ------------------------------------------------------------------ events

    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Listen to ``connection_change`` (state), ``error`` (DecartSDKError),
        ``generation_tick`` (GenerationTickMessage), ``generation_ended``
        (GenerationEndedMessage: ``seconds``, ``reason``) or ``queue_position``
        (QueuePositionMessage: ``position``, ``queue_size``; while the service queues a LiveKit
        session). Callbacks run on the SDK's callback pool, in event order; blocking SDK calls
        are allowed in them."""
        self._emitter.on(event, callback)

    def off(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Stop calling ``callback`` for ``event``."""
        self._emitter.off(event, callback)

    # ------------------------------------------------------------------ frames

    def frames(
        self, format: FrameFormat = "bgr", *, policy: FramePolicy = "latest", maxsize: int = 8
    ) -> FrameConsumer:
        """A new reader of the transformed stream: iterate it (``for frame in
        session.frames():``), or use its ``get``/``read``. Each call gives an independent
        consumer; use it as a context manager to release it early."""
        return self._hub.consumer(format=format, policy=policy, maxsize=maxsize)

    def frame_infos(
        self, format: FrameFormat = "bgr", *, policy: FramePolicy = "latest", maxsize: int = 8
    ) -> Iterator[FrameInfo]:
        """Like :meth:`frames`, yielding :class:`FrameInfo` (frame, seq, pts, received_at)."""
        return self._hub.consumer(format=format, policy=policy, maxsize=maxsize).infos()

    def _default(self) -> FrameConsumer:
        # One consumer per calling thread: a consumer serves one reader at a time, and several
        # threads calling read() on one session must not trip over each other. A dead thread's
        # consumer is collected and unsubscribes itself.
        consumer: FrameConsumer | None = getattr(self._per_thread, "consumer", None)
        if consumer is None:
            consumer = self._per_thread.consumer = self._hub.consumer()
            self._default_consumer = consumer
        return consumer

    def read(self, timeout: float | None = None) -> tuple[bool, Any | None]:
        """OpenCV style: ``ok, frame = session.read()`` with the newest BGR frame, or
        ``(False, None)`` on timeout or once the session has ended."""
        return self._default().read(timeout)

    def get_frame(self, timeout: float | None = None) -> Any:
        """Queue style: the next BGR frame; raises DecartTimeoutError or SessionClosedError."""
        return self._default().get(timeout)

    def latest(self, format: FrameFormat = "bgr") -> Any | None:
        """The newest frame received, without waiting (None before the first)."""
        return self._hub.latest(format)

    def latest_info(self, format: FrameFormat = "bgr") -> FrameInfo | None:
        """The newest frame with its ``seq`` and ``received_at``, without waiting."""
        return self._hub.latest_info(format)

    # ------------------------------------------------------------------ stats

    def stats(self, timeout: float = 2.0) -> SessionStats:
        """Frames sent/received/dropped, fps in and out, and the peer connection's RTT."""
        timeout = limit_timeout(timeout, 2.0)
        rtt: float | None = None
        if not self._closed and self._loop_thread.running:
            try:
                rtt = self._loop_thread.run(self._controller.round_trip_time(), timeout)
            except DecartSDKError:
                rtt = None
        consumer = self._default_consumer
        return SessionStats(
            frames_sent=self._source.frames_sent if self._source is not None else 0,
            frames_received=self._hub.published,
            frames_dropped=consumer.dropped if consumer is not None else 0,
            fps_in=self._source_rate(),
            fps_out=round(self._controller.fps_out.rate(), 2),
            rtt_ms=None if rtt is None else round(rtt * 1000, 2),
            state=self._state,
            transport=self.transport,
        )

    def _source_rate(self) -> float:
        """Input fps over the last couple of seconds, from samples taken at each stats() call
        (the source only counts frames; no per-frame work is added for this)."""
        if self._source is None:
            return 0.0
        now, sent = time.monotonic(), self._source.frames_sent
        self._input_samples.append((now, sent))
        while len(self._input_samples) > 1 and now - self._input_samples[0][0] > 2.0:
            self._input_samples.popleft()
        then, before = self._input_samples[0]
        if now - then < 0.25:
            then, before = self._opened_at, 0
        return round((sent - before) / (now - then), 2) if now > then else 0.0

    # ------------------------------------------------------------------ lifecycle

    def disconnect(self) -> None:
        """Close the connection, end frame iterators cleanly and release the session's threads.
        Idempotent; returns within a few seconds even if the server does not answer."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._loop_thread.remove_exit_closer(self._exit_closer)
        try:
            if self._loop_thread.running:
                self._loop_thread.run(self._controller.close(), _DISCONNECT_TIMEOUT)
        except DecartTimeoutError:
            _log.warning("%s: disconnect timed out; resources released anyway", self._label)
        finally:
            self._release_resources()

    close = disconnect

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._label} state={self._state} "
            f"session_id={self.session_id}>"
        )


class RealtimeClient(_Session):
    """A producer session: sends your video, receives the transformed stream.

    Make one with :meth:`connect` (the seed's classmethod) or ``client.realtime.connect(...)``.
    """

    def __init__(
        self,
        *,
        loop_thread: LoopThread,
        url: str,
        options: RealtimeConnectOptions,
        source: VideoSource,
        owned_source: bool,
        connect_timeout: float,
        label: str,
    ) -> None:
        choice = choose(options.transport, url, options.video_codec)
        plan = ConnectionPlan(
            role="producer",
            url=url,
            model=options.model,
            source=source,
            ice_servers=options.ice_servers,
            media_executor=loop_thread.media_executor,
            video_codec=options.video_codec,
            transport=choice.transport,
            fallback=choice.fallback,
        )
        super().__init__(
            loop_thread,
            label,
            plan=plan,
            policy=options.reconnect,
            connect_timeout=connect_timeout,
            on_remote_stream=options.on_remote_stream,
        )
        self._source = source
        self._owned_source = source if owned_source else None
        self._model = options.model

    @classmethod
    def connect(
        cls,
        base_url: str,
        api_key: str,
        local_track: Any,
        options: RealtimeConnectOptions,
        *,
        timeout: float | None = None,
        integration: str | None = None,
    ) -> RealtimeClient:
        """Connect and return once the session is connected (or raise a typed error).

        ``local_track`` is anything :func:`decart_sync.media.as_source` accepts: an aiortc
        track, a :class:`~decart_sync.media.VideoSource`, numpy frames (iterable, generator or
        ``read()`` capture), or a video file path. ``timeout`` bounds the whole connect.
        """
        api_key = _check_api_key(api_key)  # rebound: a traceback's locals show no key
        return _connect_producer(
            loop_thread=default_loop(),
            realtime_base=_protocol.realtime_base_for(base_url),
            api_key=api_key,
            source=local_track,
            options=options,
            timeout=timeout,
            agent=_protocol.user_agent(integration),
        )

    @classmethod
    def subscribe(
        cls,
        base_url: str,
        api_key: str,
        options: SubscribeOptions,
        *,
        timeout: float | None = None,
        integration: str | None = None,
    ) -> SubscribeClient:
        """Watch another session, read-only, with its producer's ``subscribe_token``."""
        api_key = _check_api_key(api_key)  # rebound: a traceback's locals show no key
        return _connect_viewer(
            loop_thread=default_loop(),
            realtime_base=_protocol.realtime_base_for(base_url),
            api_key=api_key,
            options=options,
            timeout=timeout,
            agent=_protocol.user_agent(integration),
        )

    # ------------------------------------------------------------------ state

    @property
    def subscribe_token(self) -> str | None:
        """Share with viewers so they can watch this session (``RealtimeClient.subscribe``)."""
        return self._controller.subscribe_token

    @property
    def model(self) -> ModelDefinition:
        """The model this session runs (its size and frame rate are what the server sends)."""
        return self._model

    # ------------------------------------------------------------------ control

    def _control(
        self,
        message: StateMessage,
        update: Callable[[AckedState], AckedState],
        limit: float,
        what: str,
        wait: bool,
    ) -> concurrent.futures.Future[None] | None:
        if self._closed:
            raise SessionClosedError(f"cannot {what}: the session is disconnected")
        coro = self._controller.control(message, update, limit=limit, what=what)
        if not wait:
            return self._loop_thread.submit(coro)
        self._loop_thread.run(coro, limit + _MARGIN)
        return None

    @overload
    def set(
        self, input: SetInput, *, timeout: float | None = ..., wait: Literal[True] = ...
    ) -> None: ...
    @overload
    def set(
        self, input: SetInput, *, timeout: float | None = ..., wait: Literal[False]
    ) -> concurrent.futures.Future[None]: ...

    def set(
        self, input: SetInput, *, timeout: float | None = None, wait: bool = True
    ) -> concurrent.futures.Future[None] | None:
        """Replace the whole state atomically: fields left out are cleared. Blocks until the
        server acknowledges; with ``wait=False`` returns a Future instead."""
        if not isinstance(input, SetInput):
            raise InvalidInputError(
                f"set() takes a SetInput(prompt=..., image=...), got {type(input).__name__}"
            )
        limit = limit_timeout(timeout, _protocol.SET_IMAGE_ACK_TIMEOUT)
        image = None if input.image is None else image_base64(input.image)
        prompt, enhance = input.prompt, input.enhance
        return self._control(
            _protocol.SetImageMessage(image, prompt, enhance),
            lambda s: s.after_set_image(image, prompt, enhance),
            limit,
            "set",
            wait,
        )

    @overload
    def set_prompt(
        self,
        prompt: str,
        enhance: bool = ...,
        *,
        timeout: float | None = ...,
        wait: Literal[True] = ...,
    ) -> None: ...
    @overload
    def set_prompt(
        self, prompt: str, enhance: bool = ..., *, timeout: float | None = ..., wait: Literal[False]
    ) -> concurrent.futures.Future[None]: ...

    def set_prompt(
        self, prompt: str, enhance: bool = True, *, timeout: float | None = None, wait: bool = True
    ) -> concurrent.futures.Future[None] | None:
        """Change the style prompt (the reference image stays). Blocks until acknowledged."""
        text = Prompt(prompt, enhance).text
        limit = limit_timeout(timeout, _protocol.PROMPT_ACK_TIMEOUT)
        return self._control(
            _protocol.PromptMessage(text, enhance),
            lambda s: s.after_prompt(text, enhance),
            limit,
            "set_prompt",
            wait,
        )

    @overload
    def set_image(
        self,
        image: Any,
        prompt: str | None = ...,
        enhance: bool = ...,
        *,
        timeout: float | None = ...,
        wait: Literal[True] = ...,
    ) -> None: ...
    @overload
    def set_image(
        self,
        image: Any,
        prompt: str | None = ...,
        enhance: bool = ...,
        *,
        timeout: float | None = ...,
        wait: Literal[False],
    ) -> concurrent.futures.Future[None]: ...

    def set_image(
        self,
        image: Any,
        prompt: str | None = None,
        enhance: bool = True,
        *,
        timeout: float | None = None,
        wait: bool = True,
    ) -> concurrent.futures.Future[None] | None:
        """Set the reference image (bytes, path, URL, data URL, numpy array, or None to clear
        it); with ``prompt``, change the prompt in the same step, else keep the current one."""
        data = None if image is None else image_base64(SetInput(image=image).image)
        text = OMITTED if prompt is None else Prompt(prompt, enhance).text
        sent_enhance = OMITTED if prompt is None else enhance
        limit = limit_timeout(timeout, _protocol.SET_IMAGE_ACK_TIMEOUT)
        return self._control(
            _protocol.SetImageMessage(data, text, sent_enhance),
            lambda s: s.after_set_image(data, text, sent_enhance),
            limit,
            "set_image",
            wait,
        )

    # ------------------------------------------------------------------ input

    def send(self, frame: Any) -> None:
        """Push one HxWx3 uint8 BGR frame (sessions whose source is a PushSource, e.g.
        ``client.realtime.connect(model)`` with no source). Never blocks for long."""
        from decart_sync.media.sources import PushSource

        if self._closed:
            raise SessionClosedError("cannot send(): the session is disconnected")
        if not isinstance(self._source, PushSource):
            raise InvalidInputError(
                "send() needs a push source: connect without a source, or with PushSource()"
            )
        self._source.send(frame)

    @property
    def source(self) -> VideoSource | None:
        return self._source


class SubscribeClient(_Session):
    """A read-only viewer of another session: the same frames, states and events, no control."""

    _events = ("connection_change", "error")

    def __init__(
        self,
        *,
        loop_thread: LoopThread,
        plan: ConnectionPlan,
        options: SubscribeOptions,
        connect_timeout: float,
        session_id: str | None,
        label: str,
    ) -> None:
        super().__init__(
            loop_thread,
            label,
            plan=plan,
            policy=ReconnectPolicy(),
            connect_timeout=connect_timeout,
            on_remote_stream=options.on_remote_stream,
        )
        # The server may not repeat the id to a viewer; a legacy token already names it.
        self._controller.session_id = session_id


_numbers = iter(range(1, 1 << 62))


def _connect_producer(
    *,
    loop_thread: LoopThread,
    realtime_base: str,
    api_key: str,
    source: Any,
    options: RealtimeConnectOptions,
    timeout: float | None,
    agent: str,
) -> RealtimeClient:
    from decart_sync.media.sources import PushSource, VideoSource, as_source

    if not isinstance(options, RealtimeConnectOptions):
        raise InvalidInputError(
            "options must be RealtimeConnectOptions(model=models.realtime(...), ...)"
        )
    limit = limit_timeout(timeout, DEFAULT_CONNECT_TIMEOUT)
    # No source: the session makes a PushSource for send(), and owns it like any it made.
    resolved = PushSource() if source is None else as_source(source)
    state = options.initial_state or ModelState()
    initial = AckedState(
        prompt=state.prompt.text if state.prompt else None,
        enhance=state.prompt.enhance if state.prompt else True,
        image_b64=None if state.image is None else image_base64(state.image),
    )
    url = _protocol.realtime_url(
        realtime_base,
        url_path=options.model.url_path,
        model=options.model.name,
        api_key=api_key,
        agent=agent,
        resolution=options.resolution,
        speed=options.speed,
    )
    owned = not isinstance(source, VideoSource)
    try:
        return _open_session(
            loop_thread,
            lambda: RealtimeClient(
                loop_thread=loop_thread,
                url=url,
                options=options,
                source=resolved,
                owned_source=owned,
                connect_timeout=limit,
                label=f"session-{next(_numbers)}",
            ),
            initial,
            limit,
        )
    except BaseException:
        if owned:
            resolved.close()  # a file or camera it opened for a session that never was
        raise


def _connect_viewer(
    *,
    loop_thread: LoopThread,
    realtime_base: str,
    api_key: str,
    options: SubscribeOptions,
    timeout: float | None,
    agent: str,
) -> SubscribeClient:
    if not isinstance(options, SubscribeOptions):
        raise InvalidInputError("options must be SubscribeOptions(token=...)")
    token = _protocol.parse_subscribe_token(options.token)
    limit = limit_timeout(timeout, DEFAULT_CONNECT_TIMEOUT)
    return _open_session(
        loop_thread,
        lambda: SubscribeClient(
            loop_thread=loop_thread,
            plan=_viewer_plan(token, options, realtime_base, api_key, agent, loop_thread),
            options=options,
            connect_timeout=limit,
            session_id=token.sid if isinstance(token, _protocol.SubscribeToken) else None,
            label=f"viewer-{next(_numbers)}",
        ),
        AckedState(),
        limit,
    )


_S = TypeVar("_S", bound=_Session)


def _open_session(
    loop_thread: LoopThread, make: Callable[[], _S], initial: AckedState, limit: float
) -> _S:
    """Make a session on a leased loop thread and run its first connect. A session that
    cannot be made gives its lease back; one that fails to connect releases what it holds."""
    # Counted before the loop thread starts, so that its threads already share one malloc
    # arena (decart_sync/_allocator.py); _release_resources() counts it out.
    _allocator.session_opened()
    try:
        loop_thread.acquire()
        try:
            session = make()
        except BaseException:
            loop_thread.release()
            raise
    except BaseException:
        _allocator.session_closed()
        raise
    session._open(initial, limit)
    return session


def _viewer_plan(
    token: _protocol.SubscribeToken | _protocol.RoomToken,
    options: SubscribeOptions,
    realtime_base: str,
    api_key: str,
    agent: str,
    loop_thread: LoopThread,
) -> ConnectionPlan:
    """A token says which era its session is of, so it decides the viewer's transport."""
    if isinstance(token, _protocol.SubscribeToken):
        if options.transport == "livekit":
            raise InvalidInputError(
                "this subscribe token is a legacy (webrtc) one; a LiveKit viewer needs a "
                "token from a livekit session"
            )
        return ConnectionPlan(
            role="viewer",
            url=_protocol.subscribe_url(realtime_base, token, api_key=api_key, agent=agent),
            ice_servers=options.ice_servers,
            media_executor=loop_thread.media_executor,
        )
    if options.transport == "webrtc":
        raise InvalidInputError(
            "this subscribe token names a LiveKit room; the webrtc transport cannot watch it"
        )
    choose("livekit", realtime_base)  # raises a clear error without the livekit package
    from decart_sync.realtime._livekit import watch_stream

    return ConnectionPlan(
        role="viewer",
        url=None,  # a LiveKit viewer has no control WebSocket
        media_executor=loop_thread.media_executor,
        transport="livekit",
        viewer_ticket=watch_stream(realtime_base, token.room_name, api_key=api_key, agent=agent),
    )
