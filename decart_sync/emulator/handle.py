"""``Emulator``: the in-process handle that runs the emulator server on a thread of its own.

The server lives on a private asyncio loop in one thread named ``decart-emulator``. Every
blocking method crosses to that loop and waits with a bounded timeout; calling one from the loop
thread itself raises at once instead of deadlocking. If a program forgets :meth:`Emulator.stop`,
it is called at interpreter shutdown, before non-daemon threads are joined, so that aiortc's
codec threads (which end only when their peer connection closes) cannot hang the exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from decart_sync._protocol import CAPACITY_ERROR, INSUFFICIENT_CREDITS
from decart_sync._redact import get_logger, register_secret
from decart_sync.emulator.auth import DEFAULT_API_KEY, parse_token_request
from decart_sync.emulator.server import EmulatorServer, validate_transports
from decart_sync.emulator.sessions import TRANSPORTS, SessionInfo
from decart_sync.models import ModelDefinition

_log = get_logger(__name__)

T = TypeVar("T")

THREAD_NAME = "decart-emulator"
# Bound on every blocking call into the loop; generous, since the machine may be busy.
CALL_TIMEOUT = 15.0
# wait_for re-checks its predicate at least this often (frame counters change without notice).
_POLL_INTERVAL = 0.02


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _stop_at_exit(emulator: Emulator) -> None:
    """Stop ``emulator`` at interpreter shutdown, before non-daemon threads (aiortc's codec
    threads among them) are joined. Holds only a weak reference."""
    ref = weakref.ref(emulator)

    def stop() -> None:
        alive = ref()
        if alive is not None:
            alive.stop()

    with contextlib.suppress(RuntimeError):  # already shutting down
        threading._register_atexit(stop)  # type: ignore[attr-defined]


class Emulator:
    """A local Decart-compatible realtime server.

    ::

        with Emulator() as emu:
            client = DecartClient(api_key=emu.api_key, base_url=emu.url,
                                  realtime_base_url=emu.realtime_url)

    ``port=0`` picks a free port (kept across :meth:`restart`). ``api_keys`` are the permanent
    keys it accepts (default: :data:`DEFAULT_API_KEY`). ``max_sessions`` caps concurrent
    producer sessions (more get the capacity error); ``max_sessions_per_key`` caps them per
    permanent key, the organisation's limit (more get ``Concurrent session limit reached.``, a
    client token's sessions counting against the key that minted it). ``admin_token`` guards
    the admin HTTP API (random unless given).
    ``extra_models`` are profiles served besides the registry's, e.g. a hand-made
    ``ModelDefinition`` for a model the SDK does not list yet, or a small size for tests.
    ``transports`` are the media transports served: ``"livekit"`` (rooms, as the service today)
    and ``"webrtc"`` (the legacy offer/answer); ``transports=("webrtc",)`` is a legacy-only
    server, which answers ``livekit_join`` as an unknown message type.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Sequence[str] = (DEFAULT_API_KEY,),
        max_sessions: int | None = None,
        admin_token: str | None = None,
        extra_models: Sequence[ModelDefinition] = (),
        max_sessions_per_key: int | None = None,
        transports: Sequence[str] = TRANSPORTS,
    ) -> None:
        if isinstance(api_keys, str):
            api_keys = (api_keys,)
        if not api_keys or not all(isinstance(k, str) and k for k in api_keys):
            raise ValueError("api_keys must hold at least one non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer 0-65535, got {port!r}")
        for name, limit in (
            ("max_sessions", max_sessions),
            ("max_sessions_per_key", max_sessions_per_key),
        ):
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
            ):
                raise ValueError(f"{name} must be None or an integer >= 0, got {limit!r}")
        self.host = host
        self.port = port
        self.api_keys = tuple(api_keys)
        self.max_sessions = max_sessions
        self.max_sessions_per_key = max_sessions_per_key
        if not all(isinstance(m, ModelDefinition) for m in extra_models):
            raise ValueError("extra_models must hold decart_sync.models.ModelDefinition objects")
        self.extra_models = tuple(extra_models)
        self.transports = validate_transports(transports)
        self.admin_token = admin_token or secrets.token_urlsafe(18)
        register_secret(self.admin_token)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._changes = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: EmulatorServer | None = None
        self._stop_requested: asyncio.Event | None = None
        self._atexit_registered = False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Emulator {state} {self.url}>"

    # ------------------------------------------------------------------ addresses

    @property
    def api_key(self) -> str:
        """The first permanent API key."""
        return self.api_keys[0]

    @property
    def url(self) -> str:
        """The REST base URL, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{_display_host(self.host)}:{self.port}"

    @property
    def realtime_url(self) -> str:
        """The realtime base URL, e.g. ``ws://127.0.0.1:8765``."""
        return f"ws://{_display_host(self.host)}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifetime

    def start(self) -> Emulator:
        """Start listening; returns once the server accepts connections. Idempotent."""
        with self._lock:
            if self.running:
                return self
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            thread = threading.Thread(
                target=self._run_loop, args=(started,), name=THREAD_NAME, daemon=True
            )
            thread.start()
            try:
                started.result(timeout=CALL_TIMEOUT)
            except BaseException:
                thread.join(CALL_TIMEOUT)
                raise
            self._thread = thread
            if not self._atexit_registered:
                _stop_at_exit(self)
                self._atexit_registered = True
        return self

    def _run_loop(self, started: concurrent.futures.Future[None]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            else:
                _log.exception("emulator loop failed")

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        # aiortc encodes in the loop's default executor: give its threads the emulator's name
        # (asyncio.run shuts it down with the loop).
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(thread_name_prefix=f"{THREAD_NAME}-codec")
        )
        server = EmulatorServer(
            host=self.host,
            port=self.port,
            api_keys=self.api_keys,
            admin_token=self.admin_token,
            max_sessions=self.max_sessions,
            max_sessions_per_key=self.max_sessions_per_key,
            notify=self._notify,
            extra_models=self.extra_models,
            transports=self.transports,
        )
        stop_requested = asyncio.Event()
        try:
            await server.start()
        except BaseException:
            server.executor.shutdown(wait=False)
            raise
        self.port = server.port
        self._loop = asyncio.get_running_loop()
        self._server = server
        self._stop_requested = stop_requested
        started.set_result(None)
        try:
            await stop_requested.wait()
        finally:
            await server.stop()
            server.executor.shutdown(wait=False, cancel_futures=True)

    def stop(self, timeout: float = 5.0) -> None:
        """End every session (``generation_ended`` reason ``disconnect``, close code 1001),
        stop the loop and join its thread. Idempotent."""
        with self._lock:
            thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
            if thread is None or loop is None or stop_requested is None:
                return
            self._check_not_on_loop()
            if thread.is_alive():
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    loop.call_soon_threadsafe(stop_requested.set)
                thread.join(timeout)
            if thread.is_alive():
                _log.warning("emulator thread did not stop within %ss", timeout)
            server = self._server
            self._thread = self._loop = self._server = self._stop_requested = None
        if server is not None:
            server.executor.shutdown(wait=True, cancel_futures=True)
        self._notify()

    def restart(self) -> None:
        """Drop every session abruptly, as a crash would, and listen again on the same port."""
        self._await(lambda server: server.restart())

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ crossing to the loop

    def _check_not_on_loop(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a blocking Emulator method was called on the emulator's own loop thread"
            )

    def _call(self, action: Callable[[EmulatorServer], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``action(server)`` on the loop and return its result."""

        async def run(server: EmulatorServer) -> T:
            return action(server)

        return self._await(run, timeout)

    def _await(
        self,
        action: Callable[[EmulatorServer], Coroutine[Any, Any, T]],
        timeout: float = CALL_TIMEOUT,
    ) -> T:
        """Run the coroutine ``action(server)`` on the loop and return its result."""
        self._check_not_on_loop()
        loop, server = self._loop, self._server
        if loop is None or server is None or not self.running:
            raise RuntimeError("the emulator is not running; call start() first")
        future = asyncio.run_coroutine_threadsafe(action(server), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the emulator did not answer within {timeout}s") from None

    def _notify(self) -> None:
        with self._changed:
            self._changes += 1
            self._changed.notify_all()

    # ------------------------------------------------------------------ observation

    def sessions(self) -> list[SessionInfo]:
        """Snapshots of the open producer sessions."""
        return self._call(lambda server: server.sessions())

    def wait_for(self, predicate: Callable[[Emulator], bool], timeout: float) -> None:
        """Block until ``predicate(self)`` is true; raises TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._changes
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            with self._changed:
                if self._changes == seen:
                    self._changed.wait(min(remaining, _POLL_INTERVAL))

    def create_token(
        self,
        *,
        expires_in: int | None = None,
        allowed_models: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        constraints: Mapping[str, Any] | None = None,
    ) -> str:
        """Issue a client token directly (what ``POST /v1/client/tokens`` does with the first
        permanent key, which its sessions then count against); returns its key. Raises
        ValueError for arguments the REST endpoint would refuse."""
        body: dict[str, Any] = {}
        if expires_in is not None:
            body["expiresIn"] = expires_in
        if allowed_models is not None:
            body["allowedModels"] = list(allowed_models)
        if allowed_origins is not None:
            body["allowedOrigins"] = list(allowed_origins)
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if constraints is not None:
            body["constraints"] = dict(constraints)
        request = parse_token_request(body)
        return self._call(lambda server: server.authority.issue(request, owner=self.api_key)).key

    # ------------------------------------------------------------------ faults

    def drop_websocket(self, session_id: str | None = None) -> int:
        """Cut the WebSocket of one session (or every session) with no closing handshake and no
        ``generation_ended``. Returns how many sessions it hit; UnknownSession for a bad id."""
        return self._call(lambda server: server.drop_websocket(session_id))

    def fail_peer_connection(self, session_id: str | None = None) -> int:
        """Close the peer connection (or the LiveKit room) of one session (or every session);
        the session ends."""
        return self._await(lambda server: server.fail_peer_connection(session_id))

    def freeze_video(self, seconds: float, session_id: str | None = None) -> int:
        """Keep re-sending the last frame, with no new content, for ``seconds``."""
        return self._call(lambda server: server.freeze_video(seconds, session_id))

    def end_session(self, reason: str = INSUFFICIENT_CREDITS, session_id: str | None = None) -> int:
        """End sessions as the service does: ``generation_ended`` with ``reason`` (one of
        ``GENERATION_END_REASONS``: ``disconnect``, ``timeout``, ``moderation_violation``,
        ``error``, ``insufficient_credits``), then close. ValueError for another reason."""
        return self._call(lambda server: server.end_session(reason, session_id))

    def delay_acks(self, seconds: float) -> None:
        """Send every ``prompt_ack``/``set_image_ack`` ``seconds`` late (0 to stop)."""
        self._call(lambda server: server.delay_acks(seconds))

    def withhold_acks(self, on: bool = True) -> None:
        """Send no acks at all while on; the acks held back are never sent."""
        self._call(lambda server: server.withhold_acks(on))

    def reject_next(self, n: int, error: str = CAPACITY_ERROR) -> None:
        """Reject the next ``n`` producer connections with ``error`` (then close)."""
        self._call(lambda server: server.reject_next(n, error))

    def queue_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` LiveKit sessions in a queue for ``seconds`` each after their
        ``livekit_join``, telling them their place (``queue_position``) about once a second,
        before they get their room."""
        self._call(lambda server: server.queue_next(n, seconds))

    def trickle_candidates(self, on: bool = True) -> None:
        """Follow each answer with its candidates as ``ice-candidate`` messages, which the
        service never sends (for clients that want to test they cope with them)."""
        self._call(lambda server: server.trickle_candidates(on))

    def clear_faults(self) -> None:
        """Undo every fault still in effect (ack delay/withholding, rejections, queueing,
        trickled candidates, frozen video)."""
        self._call(lambda server: server.clear_faults())
