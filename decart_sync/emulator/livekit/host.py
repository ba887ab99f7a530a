"""``RoomHost``: the rooms the emulator opens for its sessions, and the HTTP routes that serve them.

The control channel opens a room when a session sends ``livekit_join`` and hands the client the
:class:`RoomTicket` (``livekit_room_info``); ``POST /watch-stream/{room}`` asks for viewer
credentials to the same room; the session's end closes it::

    host = RoomHost(public_url=lambda: f"ws://127.0.0.1:{port}")
    host.add_routes(app)                                   # before the app starts
    ticket = host.open_room(session_id, PipelineMedia(pipeline, relay))
    viewer = host.viewer_credentials(ticket.room_name)     # KeyError: no such room
    await host.close_room(ticket.room_name)

Routes, under ``prefix`` (``/livekit``), as a LiveKit server serves them (the SDK appends
``/rtc`` to the URL it is given):

- ``GET {prefix}/rtc`` (WebSocket): the signal connection; the token comes as
  ``Authorization: Bearer`` or ``access_token=``. A refused token gets LiveKit's HTTP status
  before the upgrade (see :mod:`~decart_sync.emulator.livekit.grants`).
- ``GET {prefix}/rtc/validate``: the same checks, answered ``success``; the SDK calls it after
  a failed upgrade to learn why.
- ``GET {prefix}/rtc/v1`` (WebSocket): the same in single-peer-connection mode, which the SDK
  tries first (and LiveKit's servers serve): the client's settings and its first offer come in
  the ``join_request`` parameter, and one peer connection carries both directions. The SDK
  falls back to ``/rtc`` only on a 404, so the legacy path is served as well; ``v1/validate``
  checks the same.

Everything runs on the emulator's loop; every method must be called there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

import attrs
from aiohttp import web
from livekit.protocol import models, rtc

from decart_sync._redact import get_logger, mask
from decart_sync.emulator.livekit.grants import DEFAULT_TTL, AccessTokens, RoomGrant, TokenRefused
from decart_sync.emulator.livekit.media import RoomMedia
from decart_sync.emulator.livekit.participant import Participant
from decart_sync.emulator.livekit.room import Room
from decart_sync.emulator.livekit.wire import (
    MAX_FRAME_BYTES,
    SignalSocket,
    leave_request,
    parse_join_request,
)
from decart_sync.emulator.peer import gathering_addresses

_log = get_logger(__name__)

DEFAULT_PREFIX: Final = "/livekit"
_BEARER: Final = "Bearer "


def server_url(host: str, port: int) -> str:
    """The WebSocket base URL of a server bound to ``host``:``port``, as a client on this
    machine reaches it (a wildcard bind on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


@attrs.frozen
class RoomTicket:
    """What a client needs to join a room: the fields of ``livekit_room_info`` and of the
    ``/watch-stream`` response."""

    livekit_url: str
    token: str = attrs.field(repr=mask)
    room_name: str
    session_id: str


class RoomHost:
    """The LiveKit rooms of one emulator.

    ``public_url()`` is the server's WebSocket base URL as clients reach it
    (``ws://127.0.0.1:8765``); it is read whenever a ticket is made, so it may change after
    construction (a port chosen at start). ``bind_host`` limits the addresses ICE offers, as
    for the legacy transport. ``secret`` signs the access tokens (random by default).
    """

    def __init__(
        self,
        public_url: Callable[[], str],
        *,
        bind_host: str = "127.0.0.1",
        prefix: str = DEFAULT_PREFIX,
        secret: str | None = None,
        token_ttl: float = DEFAULT_TTL,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"prefix must start and not end with '/', got {prefix!r}")
        self.prefix = prefix
        self.tokens = AccessTokens(secret=secret)
        self.token_ttl = token_ttl
        self._public_url = public_url
        self._addresses = gathering_addresses(bind_host)
        self.rooms: dict[str, Room] = {}

    # ------------------------------------------------------------------ rooms

    def open_room(
        self,
        session_id: str,
        media: RoomMedia,
        *,
        room_name: str | None = None,
        public_url: str | None = None,
    ) -> RoomTicket:
        """Open a room for a session and return the producer's ticket: a token that may
        publish, for an identity only this ticket has. ``public_url`` overrides the host's
        WebSocket base URL for this ticket (e.g. the one the client's request came in on)."""
        name = room_name or f"decart-{session_id}"
        if name in self.rooms:
            raise ValueError(f"room {name!r} is already open")
        identity = f"client-{session_id}"
        self.rooms[name] = Room(name, session_id, media, producer_identity=identity)
        _log.info("room %s opened for session %s", name, session_id)
        return self._ticket(name, identity, can_publish=True, public_url=public_url)

    def viewer_credentials(self, room_name: str, *, public_url: str | None = None) -> RoomTicket:
        """A ticket for a new viewer of an open room: it receives the inference server's
        video and may not publish. Raises KeyError for a room that is not open."""
        room = self.rooms.get(room_name)
        if room is None or room.closed:
            raise KeyError(room_name)
        identity = f"viewer-{uuid.uuid4().hex[:12]}"
        return self._ticket(room_name, identity, can_publish=False, public_url=public_url)

    def _ticket(
        self, room_name: str, identity: str, *, can_publish: bool, public_url: str | None
    ) -> RoomTicket:
        token = self.tokens.mint(room_name, identity, can_publish=can_publish, ttl=self.token_ttl)
        base = public_url if public_url is not None else self._public_url()
        url = base.rstrip("/") + self.prefix
        return RoomTicket(url, token, room_name, self.rooms[room_name].session_id)

    def viewers(self, room_name: str) -> int:
        """How many viewers are in an open room (0 for a room not open)."""
        room = self.rooms.get(room_name)
        return 0 if room is None else room.viewers

    async def close_room(self, room_name: str) -> None:
        """Send everyone in the room away and forget it; a room not open is ignored."""
        room = self.rooms.pop(room_name, None)
        if room is not None:
            await room.close()
            _log.info("room %s closed", room_name)

    async def close(self) -> None:
        """Close every room."""
        for name in list(self.rooms):
            await self.close_room(name)

    # ------------------------------------------------------------------ HTTP

    def add_routes(self, app: web.Application) -> None:
        """Serve the rooms on ``app`` (before it starts), and close them when it shuts down."""
        app.router.add_get(f"{self.prefix}/rtc", self._signal)
        app.router.add_get(f"{self.prefix}/rtc/validate", self._validate)
        app.router.add_get(f"{self.prefix}/rtc/v1", self._single_peer_signal)
        app.router.add_get(f"{self.prefix}/rtc/v1/validate", self._validate)

        async def close_rooms(_: web.Application) -> None:
            await self.close()

        app.on_shutdown.append(close_rooms)

    def _admit(self, request: web.Request) -> tuple[Room, RoomGrant]:
        """The room and grant of a join request; raises :class:`TokenRefused`."""
        header = request.headers.get("Authorization")
        if header is not None:
            if not header.startswith(_BEARER):
                raise TokenRefused(401, "invalid authorization header. Must start with Bearer")
            token: str | None = header[len(_BEARER) :]
        else:
            token = request.query.get("access_token")
        grant = self.tokens.verify(token)
        room = self.rooms.get(grant.room)
        if room is None or room.closed:
            raise TokenRefused(404, "requested room does not exist")
        return room, grant

    async def _validate(self, request: web.Request) -> web.Response:
        try:
            self._admit(request)
        except TokenRefused as exc:
            return web.Response(status=exc.status, text=str(exc))
        return web.Response(text="success")

    async def _signal(self, request: web.Request) -> web.StreamResponse:
        """``/rtc``: two peer connections; the client's settings are query parameters."""
        return await self._serve(request, single_peer=False)

    async def _single_peer_signal(self, request: web.Request) -> web.StreamResponse:
        """``/rtc/v1``: one peer connection; the settings and first offer in ``join_request``."""
        return await self._serve(request, single_peer=True)

    async def _serve(self, request: web.Request, *, single_peer: bool) -> web.StreamResponse:
        try:
            room, grant = self._admit(request)
        except TokenRefused as exc:
            _log.info("room join refused (%s): %s", exc.status, exc)
            return web.Response(status=exc.status, text=str(exc))
        join: rtc.JoinRequest | None = None
        if single_peer:
            try:
                join = parse_join_request(request.query.get("join_request", ""))
            except ValueError as exc:
                _log.info("room join refused (400): %s", exc)
                return web.Response(status=400, text=str(exc))
            reconnect = join.reconnect
        else:
            reconnect = request.query.get("reconnect") == "1"
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        socket = SignalSocket(ws, f"{grant.identity}@{room.name}")
        if reconnect:
            # A resume of a connection this server no longer has: tell the SDK to rejoin from
            # scratch at once, rather than let it wait for a reconnect response.
            await socket.send(
                leave=leave_request(models.DisconnectReason.STATE_MISMATCH, rejoin=True)
            )
            await socket.close()
            return ws
        if room.closed:  # while the upgrade was under way
            await socket.send(leave=leave_request(models.DisconnectReason.ROOM_DELETED))
            await socket.close()
            return ws
        participant = Participant(room, grant, socket, self._addresses, join=join)
        await room.admit(participant)
        _log.info("%s joined room %s", grant.identity, room.name)
        await participant.run()
        return ws
