"""Who may use the emulator: its permanent API keys and the client tokens it issued itself.

The emulator authenticates like the real service. A permanent key opens any session and may
create client tokens (``POST /v1/client/tokens``); a client token cannot (403). A client token
comes in two forms with the same scope and expiry: its key (``ek_...``) and a JWT signed (HS256)
with a key the emulator makes up at start; either opens sessions until it expires, limited to
its ``allowedModels`` and ``allowedOrigins``, and each of its sessions ends after
``constraints.realtime.maxSessionDuration`` seconds. Every session counts against the permanent
key that opened it or minted its token (the organisation), for the concurrency limit. Rejections
carry the texts clients recognise as permanent (``invalid api key``, ``unauthorized``,
``permission denied``, ``not allowed``), so a client never retries them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from decart_sync import _protocol as protocol
from decart_sync._redact import register_secret

#: The API key an emulator accepts when it is started without any. It is not a secret: the
#: emulator listens on this machine only, and anyone who can reach it may use it.
DEFAULT_API_KEY: Final = "decart-emulator-key"

DEFAULT_TOKEN_LIFETIME: Final = protocol.TOKEN_DEFAULT_LIFETIME
CLIENT_TOKEN_PREFIX: Final = "ek_"
# Expired tokens are remembered this long, so that using one says "expired" rather than
# "invalid"; after that they are forgotten, so a long-running emulator does not grow.
_EXPIRED_TOKEN_MEMORY = 3600.0


INVALID_API_KEY: Final = "Invalid API key"
CLIENT_TOKEN_CANNOT_MINT: Final = "Permission denied: a client token cannot create client tokens"
TOKEN_EXPIRED: Final = "Unauthorized: client token expired"


class Rejected(Exception):
    """A connection or request that may not proceed. The text is what the client is told."""


class InvalidTokenRequest(ValueError):
    """A ``POST /v1/client/tokens`` body that breaks the contract. The text says what is wrong."""


@attrs.frozen
class TokenRequest:
    """A validated token request body (protocol section 6)."""

    expires_in: int = DEFAULT_TOKEN_LIFETIME
    allowed_models: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None


@attrs.frozen
class ClientToken:
    """A client token this emulator issued."""

    key: str = attrs.field(repr=False)
    #: The same token as a signed JWT (what browsers use for realtime).
    jwt: str = attrs.field(repr=False)
    #: The permanent key that minted it: its sessions count against that key's limit.
    owner: str = attrs.field(repr=False)
    expires_at: float  # Unix time
    allowed_models: tuple[str, ...] | None
    allowed_origins: tuple[str, ...] | None
    metadata: dict[str, Any] | None
    constraints: dict[str, Any] | None

    @property
    def max_session_duration(self) -> int | None:
        realtime = (self.constraints or {}).get("realtime")
        if isinstance(realtime, Mapping):
            value = realtime.get("maxSessionDuration")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    def permissions(self) -> dict[str, list[str]]:
        """The restrictions that were set, and only those (protocol section 6)."""
        permissions: dict[str, list[str]] = {}
        if self.allowed_models is not None:
            permissions["models"] = list(self.allowed_models)
        if self.allowed_origins is not None:
            permissions["origins"] = list(self.allowed_origins)
        return permissions

    def response_body(self) -> dict[str, Any]:
        """The JSON the REST endpoint answers with. Official clients validate it strictly: a
        ``permissions`` key appears only when something was restricted, and never as null."""
        expires = datetime.datetime.fromtimestamp(self.expires_at, tz=datetime.timezone.utc)
        body: dict[str, Any] = {
            "apiKey": self.key,
            "token": self.jwt,
            "expiresAt": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        permissions = self.permissions()
        if permissions:
            body["permissions"] = permissions
        if self.constraints is not None:
            body["constraints"] = self.constraints
        return body


@attrs.frozen
class Grant:
    """What an accepted key may do in the session it opens."""

    #: The permanent key the session counts against (the organisation's).
    owner: str = attrs.field(repr=False)
    client_token: bool = False
    max_session_duration: int | None = None


# --------------------------------------------------------------------------- request validation


def parse_token_request(body: object) -> TokenRequest:
    """Validate a decoded JSON body by the protocol's rules; raises
    :class:`InvalidTokenRequest`. A lifetime not given is the service's default."""
    try:
        request = protocol.TokenRequest.parse(body)
    except protocol.ProtocolViolation as exc:
        raise InvalidTokenRequest(str(exc)) from None
    return TokenRequest(
        expires_in=request.expires_in or DEFAULT_TOKEN_LIFETIME,
        allowed_models=request.allowed_models,
        allowed_origins=request.allowed_origins,
        metadata=request.metadata,
        constraints=request.constraints,
    )


def _normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: Mapping[str, Any], key: bytes) -> str:
    """``claims`` as a compact JWS with HS256 (RFC 7519), signed with ``key``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def _jwt_claims(request: TokenRequest, issued_at: float, expires_at: float) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "decart-emulator",
        "jti": secrets.token_hex(12),
        "iat": int(issued_at),
        "exp": int(expires_at),
    }
    if request.allowed_models is not None:
        claims["models"] = list(request.allowed_models)
    if request.allowed_origins is not None:
        claims["origins"] = list(request.allowed_origins)
    if request.constraints is not None:
        claims["constraints"] = request.constraints
    if request.metadata is not None:
        claims["metadata"] = request.metadata
    return claims


# --------------------------------------------------------------------------- the authority


class Authority:
    """The emulator's keys and issued tokens. Thread-safe: tokens may be issued from any thread.

    ``clock`` gives Unix time; tests may replace it to make tokens expire without waiting.
    """

    def __init__(self, api_keys: Iterable[str], *, clock: Callable[[], float] = time.time) -> None:
        keys = tuple(api_keys)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("the emulator needs at least one non-empty API key")
        for key in keys:
            register_secret(key)
        self.api_keys = keys
        self.clock = clock
        # Signs the tokens' JWT form; made up per emulator, so no JWT outlives its emulator.
        self._signing_key = secrets.token_bytes(32)
        # Each token under both of its forms, its key and its JWT.
        self._tokens: dict[str, ClientToken] = {}
        self._lock = threading.Lock()

    def is_permanent_key(self, key: str | None) -> bool:
        if not key:
            return False
        # Constant-time comparison, as a real service would do it.
        return any(hmac.compare_digest(key.encode(), k.encode()) for k in self.api_keys)

    def issue(self, request: TokenRequest, owner: str) -> ClientToken:
        """Create a client token minted by the permanent key ``owner``."""
        now = self.clock()
        expires_at = now + request.expires_in
        token = ClientToken(
            key=CLIENT_TOKEN_PREFIX + secrets.token_urlsafe(24),
            jwt=sign_jwt(_jwt_claims(request, now, expires_at), self._signing_key),
            owner=owner,
            expires_at=expires_at,
            allowed_models=request.allowed_models,
            allowed_origins=request.allowed_origins,
            metadata=request.metadata,
            constraints=request.constraints,
        )
        register_secret(token.key)
        register_secret(token.jwt)
        with self._lock:
            self._forget_old_tokens()
            self._tokens[token.key] = token
            self._tokens[token.jwt] = token
        return token

    def _forget_old_tokens(self) -> None:
        horizon = self.clock() - _EXPIRED_TOKEN_MEMORY
        for key in [k for k, t in self._tokens.items() if t.expires_at < horizon]:
            del self._tokens[key]

    def is_client_token(self, key: str | None) -> bool:
        """Whether ``key`` is one of the client tokens issued here (live or expired)."""
        with self._lock:
            return bool(key) and key in self._tokens

    def authenticate(self, key: str | None) -> ClientToken | str:
        """Check a key: the key itself for a permanent key, the token for a live client token
        (either form). Raises :class:`Rejected` with the text to send for a missing, unknown or
        expired key."""
        if not key:
            raise Rejected(f"{INVALID_API_KEY}: no api_key given")
        if self.is_permanent_key(key):
            return key
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            raise Rejected(INVALID_API_KEY)
        if self.clock() >= token.expires_at:
            raise Rejected(TOKEN_EXPIRED)
        return token


def permit(key: ClientToken | str, *, model: str, origin: str | None) -> Grant:
    """Check what an authenticated key (a permanent key or a client token) may do: open
    ``model`` from ``origin`` (the WebSocket ``Origin`` header). Raises :class:`Rejected` with
    the text to send."""
    if isinstance(key, str):
        return Grant(owner=key)
    token = key
    if token.allowed_models is not None and model not in token.allowed_models:
        raise Rejected(f"Permission denied: model {model!r} is not allowed for this token")
    if token.allowed_origins is not None:
        allowed = {_normalise_origin(o) for o in token.allowed_origins}
        if origin is None or _normalise_origin(origin) not in allowed:
            shown = repr(origin) if origin is not None else "(none sent)"
            raise Rejected(f"Permission denied: origin {shown} is not allowed for this token")
    return Grant(
        owner=token.owner, client_token=True, max_session_duration=token.max_session_duration
    )
