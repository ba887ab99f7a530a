"""Access tokens for the emulator's LiveKit rooms: minted for the rooms it opens, checked on join.

A token is a LiveKit access JWT (HS256 with the host's secret; issuer = its API key) made and
read with ``livekit-api``, so it is what a real LiveKit deployment hands out. A join is refused
the way LiveKit refuses it, with the same HTTP statuses (``livekit/livekit``
``pkg/service/auth.go`` and ``ValidateConnectRequest``):

- no token, a bad signature, another issuer, an expired token: 401;
- a token that does not grant ``roomJoin`` for a named room: 401;
- a token with no identity: 400;
- a token for a room this server does not host: 404 (LiveKit with room auto-creation off).

Tokens are secrets: every one minted is registered with :mod:`decart_sync._redact`.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Final

import attrs
import jwt
from livekit.api.access_token import AccessToken, TokenVerifier, VideoGrants

from decart_sync._redact import register_secret

DEFAULT_API_KEY: Final = "decart-emulator-livekit"
# LiveKit's own default is six hours; a session's room needs far less, and a short life is what
# makes the viewer's "ask again on every reconnect" rule matter (protocol.md section 4).
DEFAULT_TTL: Final = 600.0


class TokenRefused(Exception):
    """A join refused before the WebSocket upgrade: ``status`` is the HTTP status LiveKit
    answers with, the message its body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class RoomGrant:
    """What a verified token allows its holder."""

    identity: str
    room: str
    can_publish: bool
    can_subscribe: bool


class AccessTokens:
    """Mints and verifies the access tokens of one room host. ``secret`` defaults to a random
    one, so tokens of one emulator are worthless to another."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, secret: str | None = None) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self.api_key = api_key
        self._secret = secret or secrets.token_urlsafe(32)
        register_secret(self._secret)
        self._verifier = TokenVerifier(api_key, self._secret)

    def mint(self, room: str, identity: str, *, can_publish: bool, ttl: float = DEFAULT_TTL) -> str:
        """A token that lets ``identity`` join ``room`` for ``ttl`` seconds (negative: already
        expired, for tests), subscribing always and publishing only if ``can_publish``."""
        grants = VideoGrants(
            room_join=True,
            room=room,
            can_publish=can_publish,
            can_publish_data=can_publish,
            can_subscribe=True,
        )
        token = (
            AccessToken(self.api_key, self._secret)
            .with_identity(identity)
            .with_name(identity)
            .with_grants(grants)
            .with_ttl(datetime.timedelta(seconds=ttl))
            .to_jwt()
        )
        register_secret(token)
        return token

    def verify(self, token: str | None) -> RoomGrant:
        """The grant ``token`` carries; raises :class:`TokenRefused` with LiveKit's status."""
        if not token:
            raise TokenRefused(401, "permissions denied")
        try:
            claims = self._verifier.verify(token)
        except jwt.PyJWTError as exc:
            raise TokenRefused(401, f"invalid authorization token: {exc}") from None
        video = claims.video
        if video is None or not video.room_join or not video.room:
            raise TokenRefused(401, "permissions denied")
        if not claims.identity:
            raise TokenRefused(400, "participant identity cannot be empty")
        return RoomGrant(
            identity=claims.identity,
            room=video.room,
            can_publish=bool(video.can_publish),
            can_subscribe=bool(video.can_subscribe),
        )
