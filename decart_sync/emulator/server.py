"""The emulator's HTTP server: the realtime and subscribe WebSockets, client tokens, health,
and the fault-injection operations, all on one host and port.

:class:`EmulatorServer` lives on one event loop and is used only there; ``Emulator`` (in
``handle.py``) runs it on a thread of its own for blocking callers.

Routes (protocol section 1 and 6)::

    GET  /v1/stream?api_key=&model=[&resolution=][&speed=]&user_agent=   producer WebSocket
    GET  /subscribe/{sid}?IP=&port=&api_key=&user_agent=                 viewer WebSocket (webrtc)
    POST /watch-stream/{room_name}                                       viewer credentials
                                                                         (livekit; x-api-key)
    *    /livekit/rtc...                                                 the LiveKit rooms
    POST /v1/client/tokens                                               client tokens (X-API-KEY)
    GET  /health                                                         liveness
    *    /_emulator/...                                                  admin API (see admin.py)

Both media transports are served unless the server is told otherwise (``transports``); a
producer picks one with its first ``offer`` or ``livekit_join`` (see ``sessions.py``). The REST
endpoints (tokens, watch-stream, health) answer cross-origin requests and their preflights, so
that a page served from elsewhere can create tokens and watch a stream, as it can against the
service.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from aiohttp import WSCloseCode, web

from decart_sync._protocol import (
    CAPACITY_ERROR,
    CONCURRENCY_LIMIT_ERROR,
    GENERATION_END_REASONS,
    TOKENS_PATH,
    ProtocolViolation,
    parse_json,
)
from decart_sync._redact import get_logger
from decart_sync._version import __version__
from decart_sync.emulator.admin import ADMIN_PREFIX, add_admin_routes
from decart_sync.emulator.auth import (
    CLIENT_TOKEN_CANNOT_MINT,
    INVALID_API_KEY,
    Authority,
    Grant,
    InvalidTokenRequest,
    Rejected,
    parse_token_request,
    permit,
)
from decart_sync.emulator.faults import (
    FaultPlan,
    UnknownSession,
    validate_count,
    validate_delay,
)
from decart_sync.emulator.livekit import RoomHost, server_url
from decart_sync.emulator.sessions import (
    TRANSPORTS,
    ProducerSession,
    SessionContext,
    SessionInfo,
    Transport,
    ViewerSession,
)
from decart_sync.emulator.signaling import SignalingChannel, SignalingSession, new_websocket
from decart_sync.errors import ModelNotFoundError
from decart_sync.models import ModelDefinition, realtime, realtime_model_names

_log = get_logger(__name__)

RESOLUTIONS: Final = ("720p", "1080p")
HEALTH_PATH: Final = "/health"
WATCH_STREAM_PREFIX: Final = "/watch-stream/"
# The REST endpoints a page on another origin may call (the WebSockets need no CORS).
_CORS_PATHS: Final = (TOKENS_PATH, HEALTH_PATH)
# How long shutdown waits for sessions to say goodbye before cutting them off.
_DRAIN_TIMEOUT = 3.0


def _model_for(
    name: str | None, path: str, extra: Mapping[str, ModelDefinition]
) -> ModelDefinition:
    if not name:
        raise Rejected("Model not found: no 'model' query parameter given")
    try:
        model = extra[name] if name in extra else realtime(name)
    except ModelNotFoundError:
        raise Rejected(f"Model not found: {name!r}") from None
    if model.url_path != path:
        raise Rejected(f"Model not found: {name!r} is served at {model.url_path}, not {path}")
    return model


def _check_speed(speed: str | None, model: ModelDefinition) -> None:
    if speed is None or speed in model.speeds:
        return
    offered = f"use {' or '.join(model.speeds)}" if model.speeds else "it has one speed"
    raise Rejected(f"Speed {speed!r} is not allowed for model {model.name!r}: {offered}")


def _cors_headers(request: web.Request) -> dict[str, str]:
    # Any origin may call, as the service allows; the API key, not the origin, authorises.
    requested = request.headers.get("Access-Control-Request-Headers")
    return {
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": requested or "Content-Type, X-API-KEY",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _is_cors_path(path: str) -> bool:
    return path in _CORS_PATHS or path.startswith(WATCH_STREAM_PREFIX)


def _websocket_base(request: web.Request) -> str:
    """The WebSocket base URL the client reached this server on (its ``Host``), so that the
    room URLs handed to it work wherever it came from."""
    return f"ws://{request.host}"


def validate_transports(transports: Iterable[str]) -> frozenset[Transport]:
    """The transports to serve: a non-empty selection of :data:`TRANSPORTS` (ValueError
    otherwise)."""
    if isinstance(transports, str):
        transports = (transports,)
    chosen = tuple(transports)
    unknown = [t for t in chosen if t not in TRANSPORTS]
    if not chosen or unknown:
        raise ValueError(
            f"transports must name at least one of {', '.join(TRANSPORTS)}, got {chosen!r}"
        )
    return frozenset(t for t in TRANSPORTS if t in chosen)


def _rest_error(request: web.Request, text: str, status: int) -> web.Response:
    _log.info("%s %s from %s: %s %s", request.method, request.path, request.remote, status, text)
    return web.json_response({"error": text}, status=status)


class EmulatorServer:
    """The emulator on its event loop. ``notify`` is called (on the loop) on every change a
    waiting caller might care about."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        api_keys: Iterable[str],
        admin_token: str,
        max_sessions: int | None = None,
        max_sessions_per_key: int | None = None,
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        extra_models: Iterable[ModelDefinition] = (),
        transports: Iterable[str] = TRANSPORTS,
    ) -> None:
        for name, limit in (
            ("max_sessions", max_sessions),
            ("max_sessions_per_key", max_sessions_per_key),
        ):
            if limit is not None and (isinstance(limit, bool) or limit < 0):
                raise ValueError(f"{name} must be None or an integer >= 0, got {limit}")
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        # The organisation's concurrency limit: sessions per permanent key (a client token's
        # sessions count against the key that minted it).
        self.max_sessions_per_key = max_sessions_per_key
        # Profiles served besides the registry's (a model the SDK does not list yet, a size
        # for benchmarks); a name here takes precedence over the registry's.
        self.extra_models = {model.name: model for model in extra_models}
        self.authority = Authority(api_keys, clock=clock)
        self.admin_token = admin_token
        self.faults = FaultPlan()
        self.transports = validate_transports(transports)
        # Rendering and image decoding; never on the loop.
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="decart-emulator-render"
        )
        self._notify = notify
        #: The LiveKit rooms of livekit-transport sessions, served under /livekit. Tickets name
        #: the URL each client came in on; ``server_url`` is only the fallback.
        self.rooms = RoomHost(lambda: server_url(self.host, self.port), bind_host=host)
        self._context = SessionContext(
            host, port, self.executor, self.faults, notify, self.rooms, self.transports
        )
        self.producers: dict[str, ProducerSession] = {}
        self._viewers: set[ViewerSession] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: web.AppRunner | None = None
        # Set while stopping or restarting: connections that arrive meanwhile are turned away.
        self._closing = False
        #: How many times the server restarted (reported by /health, so a test can tell).
        self.restarts = 0

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        """Listen on host:port (port 0: a free one, kept across restarts)."""
        app = web.Application(middlewares=[self._cors, self._admin_guard])
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_post(TOKENS_PATH, self._create_token)
        app.router.add_post(WATCH_STREAM_PREFIX + "{room_name}", self._watch_stream)
        self.rooms.add_routes(app)
        registered = {realtime(name).url_path for name in realtime_model_names()}
        for path in sorted(registered | {m.url_path for m in self.extra_models.values()}):
            app.router.add_get(path, self._producer_endpoint)
        app.router.add_get("/subscribe/{sid}", self._viewer_endpoint)
        add_admin_routes(app, self)
        # No access log: request lines carry api_key in their query string.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_DRAIN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
            self._context.port = self.port
        _log.info("emulator listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """End every session as the service does on shutdown, then stop listening."""
        self._closing = True
        for producer in list(self.producers.values()):
            producer.finish("disconnect", code=WSCloseCode.GOING_AWAY)
        for viewer in list(self._viewers):
            viewer.end(code=WSCloseCode.GOING_AWAY, reason_text="server shutdown")
        await self._drain()
        await self._stop_listening()

    async def restart(self) -> None:
        """Drop every session abruptly (as a crash would) and listen again on the same port."""
        self._closing = True
        for session in self._all_sessions():
            session.end(abrupt=True)
        await self._drain()
        await self._stop_listening()
        self._closing = False
        await self.start()
        self.restarts += 1

    async def _drain(self) -> None:
        """Wait for every session to clean up; cut off the ones that take too long."""
        try:
            await asyncio.wait_for(self._idle.wait(), _DRAIN_TIMEOUT)
        except asyncio.TimeoutError:
            _log.warning("sessions still open after %ss; cutting them off", _DRAIN_TIMEOUT)
            for session in self._all_sessions():
                session.channel.abort()
            try:
                await asyncio.wait_for(self._idle.wait(), _DRAIN_TIMEOUT)
            except asyncio.TimeoutError:
                _log.warning("sessions did not clean up: %d left", len(self._all_sessions()))

    async def _stop_listening(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _all_sessions(self) -> list[SignalingSession]:
        return [*self.producers.values(), *self._viewers]

    def _track(self, session: SignalingSession, add: bool) -> None:
        if isinstance(session, ProducerSession):
            if add:
                self.producers[session.session_id] = session
            else:
                self.producers.pop(session.session_id, None)
        elif isinstance(session, ViewerSession):
            (self._viewers.add if add else self._viewers.discard)(session)
        if self._all_sessions():
            self._idle.clear()
        else:
            self._idle.set()
        self._notify()

    async def _serve(self, session: SignalingSession) -> None:
        self._track(session, add=True)
        try:
            await session.run()
        finally:
            self._track(session, add=False)

    # ------------------------------------------------------------------ observation

    def sessions(self) -> list[SessionInfo]:
        return [p.info() for p in self.producers.values()]

    # ------------------------------------------------------------------ HTTP

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "version": __version__,
                "sessions": len(self.producers),
                "restarts": self.restarts,
            }
        )

    async def _create_token(self, request: web.Request) -> web.Response:
        key = request.headers.get("X-API-KEY")
        if not self.authority.is_permanent_key(key):
            if self.authority.is_client_token(key):
                return _rest_error(request, CLIENT_TOKEN_CANNOT_MINT, 403)
            return _rest_error(request, INVALID_API_KEY, 401)
        assert key is not None
        raw = await request.read()
        try:
            body: Any = parse_json(raw) if raw.strip() else {}
        except ProtocolViolation:
            return _rest_error(request, "body is not valid JSON", 400)
        try:
            token_request = parse_token_request(body)
        except InvalidTokenRequest as exc:
            return _rest_error(request, str(exc), 400)
        token = self.authority.issue(token_request, owner=key)
        return web.json_response(token.response_body())

    async def _watch_stream(self, request: web.Request) -> web.Response:
        """Fresh credentials for a viewer of a live room (protocol section 4): any key that
        could open the room's session may watch it."""
        room_name = request.match_info["room_name"]  # aiohttp decoded it
        try:
            key = self.authority.authenticate(request.headers.get("x-api-key"))
        except Rejected as exc:
            return _rest_error(request, str(exc), 401)
        producer = next(
            (p for p in self.producers.values() if p.room_name == room_name and not p.ended),
            None,
        )
        try:
            if producer is None:
                raise KeyError(room_name)
            permit(key, model=producer.model.name, origin=request.headers.get("Origin"))
            ticket = self.rooms.viewer_credentials(room_name, public_url=_websocket_base(request))
        except KeyError:
            return _rest_error(request, f"Room not found: {room_name!r}", 404)
        except Rejected as exc:
            return _rest_error(request, str(exc), 403)
        return web.json_response(
            {
                "livekit_url": ticket.livekit_url,
                "token": ticket.token,
                "room_name": ticket.room_name,
                "session_id": ticket.session_id,
            }
        )

    @web.middleware
    async def _cors(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not _is_cors_path(request.path):
            response: web.StreamResponse = await handler(request)
            return response
        if request.method == "OPTIONS":  # a preflight: no handler, no authentication
            return web.Response(status=204, headers=_cors_headers(request))
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(_cors_headers(request))
            raise
        response.headers.update(_cors_headers(request))
        return response

    @web.middleware
    async def _admin_guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX + "/") and not self._is_admin(request):
            return web.json_response(
                {"error": "admin token required: Authorization: Bearer <admin_token>"},
                status=401,
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _is_admin(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.admin_token}"
        return hmac.compare_digest(given.encode(), expected.encode())

    # ------------------------------------------------------------------ WebSockets

    def _server_ip(self, request: web.Request) -> str:
        # The address this client reached us on: right even when bound to 0.0.0.0.
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(sockname, tuple) and sockname:
            return str(sockname[0])
        return self.host

    def _refuse_while_closing(self) -> None:
        if self._closing:
            # Worded as the capacity error: clients retry it, which is right after a restart.
            raise Rejected(CAPACITY_ERROR)

    def _admit_producer(self, request: web.Request) -> tuple[ModelDefinition, Grant]:
        """Check a new producer connection; raises :class:`Rejected` with the text to send.
        Synchronous, so that the capacity check and the registration that follows it cannot
        interleave with another connection."""
        self._refuse_while_closing()
        forced = self.faults.take_rejection()
        if forced is not None:
            raise Rejected(forced)
        query = request.query
        key = self.authority.authenticate(query.get("api_key"))
        model = _model_for(query.get("model"), request.path, self.extra_models)
        resolution = query.get("resolution")
        if resolution is not None and resolution not in RESOLUTIONS:
            raise Rejected(f"Resolution {resolution!r} is not allowed: use 720p or 1080p")
        _check_speed(query.get("speed"), model)
        grant = permit(key, model=model.name, origin=request.headers.get("Origin"))
        if self.max_sessions_per_key is not None:
            open_for_owner = sum(1 for p in self.producers.values() if p.grant.owner == grant.owner)
            if open_for_owner >= self.max_sessions_per_key:
                raise Rejected(CONCURRENCY_LIMIT_ERROR)
        if self.max_sessions is not None and len(self.producers) >= self.max_sessions:
            raise Rejected(CAPACITY_ERROR)
        return model, grant

    async def _producer_endpoint(self, request: web.Request) -> web.WebSocketResponse:
        ws = new_websocket()
        await ws.prepare(request)
        channel = SignalingChannel(ws, request, "producer")
        try:
            model, grant = self._admit_producer(request)
        except Rejected as exc:
            await channel.reject(str(exc))  # logged as it is sent
            return ws
        session = ProducerSession(
            channel,
            self._context,
            model,
            grant,
            self._server_ip(request),
            _websocket_base(request),
        )
        _log.info("session %s opened (model %s)", session.session_id, model.name)
        await self._serve(session)
        _log.info("session %s closed", session.session_id)
        return ws

    def _admit_viewer(self, request: web.Request) -> ProducerSession:
        self._refuse_while_closing()
        query = request.query
        key = self.authority.authenticate(query.get("api_key"))
        sid = request.match_info["sid"]
        producer = self.producers.get(sid)
        if producer is None or producer.ended:
            raise Rejected(f"Invalid session: no session {sid!r} on this server")
        if not query.get("IP") or query.get("port") != str(self.port):
            raise Rejected(
                f"Invalid session: the subscribe token does not point at this server "
                f"(port {self.port})"
            )
        permit(key, model=producer.model.name, origin=request.headers.get("Origin"))
        return producer

    async def _viewer_endpoint(self, request: web.Request) -> web.WebSocketResponse:
        ws = new_websocket()
        await ws.prepare(request)
        channel = SignalingChannel(ws, request, "viewer")
        try:
            producer = self._admit_viewer(request)
        except Rejected as exc:
            await channel.reject(str(exc))  # logged as it is sent
            return ws
        viewer = ViewerSession(channel, producer)
        producer.viewers.add(viewer)
        await self._serve(viewer)
        return ws

    # ------------------------------------------------------------------ faults

    def _targets(self, session_id: str | None) -> list[ProducerSession]:
        if session_id is None:
            return list(self.producers.values())
        try:
            return [self.producers[session_id]]
        except KeyError:
            raise UnknownSession(f"no session {session_id!r}") from None

    def drop_websocket(self, session_id: str | None = None) -> int:
        """Cut sessions' WebSockets without a closing handshake or ``generation_ended``."""
        targets = self._targets(session_id)
        for session in targets:
            session.end(abrupt=True)
        return len(targets)

    async def fail_peer_connection(self, session_id: str | None = None) -> int:
        """Close sessions' peer connections or LiveKit rooms (the sessions then end, as the
        service's do). Returns how many it closed."""
        failed = 0
        for session in self._targets(session_id):
            failed += await session.fail_media()
        return failed

    def freeze_video(self, seconds: float, session_id: str | None = None) -> int:
        """Repeat each session's last frame, with no new content, for ``seconds``."""
        duration = validate_delay(seconds, "seconds")
        targets = self._targets(session_id)
        for session in targets:
            session.pipeline.freeze(duration)
        return len(targets)

    def end_session(self, reason: str, session_id: str | None = None) -> int:
        """End sessions with ``generation_ended`` carrying ``reason`` and a normal close."""
        if reason not in GENERATION_END_REASONS:
            raise ValueError(
                f"reason must be one of {', '.join(GENERATION_END_REASONS)}, got {reason!r}"
            )
        targets = self._targets(session_id)
        for session in targets:
            session.finish(reason)
        return len(targets)

    def delay_acks(self, seconds: float) -> None:
        self.faults.ack_delay = validate_delay(seconds, "seconds")

    def withhold_acks(self, on: bool = True) -> None:
        self.faults.acks_withheld = bool(on)

    def trickle_candidates(self, on: bool = True) -> None:
        self.faults.trickle_candidates = bool(on)

    def reject_next(self, n: int, error: str = CAPACITY_ERROR) -> None:
        if not isinstance(error, str) or not error.strip():
            raise ValueError("error must be a non-empty string")
        self.faults.rejections_left = validate_count(n)
        self.faults.rejection_error = error

    def queue_next(self, n: int, seconds: float) -> None:
        self.faults.queued_left = validate_count(n)
        self.faults.queue_seconds = validate_delay(seconds, "seconds")

    def clear_faults(self) -> None:
        """Clear the server-wide faults and unfreeze every session's video."""
        self.faults.clear()
        for session in self.producers.values():
            session.pipeline.unfreeze()
