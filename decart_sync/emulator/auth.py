"""Who may use the emulator: its permanent API keys and the client tokens it issued itself.

The emulator authenticates like the real service. A permanent key opens any session and may
create client tokens (``POST /v1/client/tokens``); a client token (``ek_...``) opens sessions
until it expires, limited to its ``allowedModels`` and ``allowedOrigins``, and each of its
sessions ends after ``constraints.realtime.maxSessionDuration`` seconds. Rejections carry the
texts clients recognise as permanent (``invalid api key``, ``unauthorized``, ``permission
denied``, ``not allowed``), so a client never retries them.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from decart_sync._redact import register_secret

#: The API key an emulator accepts when it is started without any. It is not a secret: the
#: emulator listens on this machine only, and anyone who can reach it may use it.
DEFAULT_API_KEY: Final = "decart-emulator-key"

DEFAULT_TOKEN_LIFETIME: Final = 60
MAX_TOKEN_LIFETIME: Final = 3600
MAX_LIST_ITEMS: Final = 20
CLIENT_TOKEN_PREFIX: Final = "ek_"
# Expired tokens are remembered this long, so that using one says "expired" rather than
# "invalid"; after that they are forgotten, so a long-running emulator does not grow.
_EXPIRED_TOKEN_MEMORY = 3600.0

_TOKEN_FIELDS: Final = (
    "expiresIn",
    "allowedModels",
    "allowedOrigins",
    "metadata",
    "constraints",
)

INVALID_API_KEY: Final = "Invalid API key"
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
    expires_at: float  # Unix time
    allowed_models: tuple[str, ...] | None
    allowed_origins: tuple[str, ...] | None
    metadata: dict[str, Any] | None
    constraints: dict[str, Any] | None

    @property
    def max_session_duration(self) -> float | None:
        realtime = (self.constraints or {}).get("realtime")
        if isinstance(realtime, Mapping):
            value = realtime.get("maxSessionDuration")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    def response_body(self) -> dict[str, Any]:
        """The JSON the REST endpoint answers with."""
        expires = datetime.datetime.fromtimestamp(self.expires_at, tz=datetime.timezone.utc)
        body: dict[str, Any] = {
            "apiKey": self.key,
            "expiresAt": expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            # null means unrestricted.
            "permissions": {
                "models": list(self.allowed_models) if self.allowed_models is not None else None,
                "origins": (
                    list(self.allowed_origins) if self.allowed_origins is not None else None
                ),
            },
        }
        if self.constraints is not None:
            body["constraints"] = self.constraints
        return body


@attrs.frozen
class Grant:
    """What an accepted key may do in the session it opens."""

    client_token: bool
    max_session_duration: float | None = None


# --------------------------------------------------------------------------- request validation


def _string_list(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidTokenRequest(f"{name} must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidTokenRequest(f"{name} takes at most {MAX_LIST_ITEMS} items, got {len(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidTokenRequest(f"{name} items must be non-empty strings, got {item!r}")
    return tuple(value)


def _constraints(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidTokenRequest(f"constraints must be an object, got {type(value).__name__}")
    realtime = value.get("realtime")
    if realtime is not None:
        if not isinstance(realtime, dict):
            raise InvalidTokenRequest(
                f"constraints.realtime must be an object, got {type(realtime).__name__}"
            )
        duration = realtime.get("maxSessionDuration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0
        ):
            raise InvalidTokenRequest(
                "constraints.realtime.maxSessionDuration must be a positive number of seconds, "
                f"got {duration!r}"
            )
    return value


def parse_token_request(body: object) -> TokenRequest:
    """Validate a decoded JSON body; raises :class:`InvalidTokenRequest`."""
    if not isinstance(body, dict):
        raise InvalidTokenRequest(f"body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(_TOKEN_FIELDS))
    if unknown:
        raise InvalidTokenRequest(
            f"unknown field {unknown[0]!r}; the fields are {', '.join(_TOKEN_FIELDS)}"
        )
    expires_in = body.get("expiresIn", DEFAULT_TOKEN_LIFETIME)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise InvalidTokenRequest(f"expiresIn must be an integer, got {expires_in!r}")
    if not 1 <= expires_in <= MAX_TOKEN_LIFETIME:
        raise InvalidTokenRequest(
            f"expiresIn must be between 1 and {MAX_TOKEN_LIFETIME} seconds, got {expires_in}"
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidTokenRequest(f"metadata must be an object, got {type(metadata).__name__}")
    return TokenRequest(
        expires_in=expires_in,
        allowed_models=(
            _string_list("allowedModels", body["allowedModels"])
            if body.get("allowedModels") is not None
            else None
        ),
        allowed_origins=(
            _string_list("allowedOrigins", body["allowedOrigins"])
            if body.get("allowedOrigins") is not None
            else None
        ),
        metadata=metadata,
        constraints=(
            _constraints(body["constraints"]) if body.get("constraints") is not None else None
        ),
    )


def _normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


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
        self._tokens: dict[str, ClientToken] = {}
        self._lock = threading.Lock()

    def is_permanent_key(self, key: str | None) -> bool:
        if not key:
            return False
        # Constant-time comparison, as a real service would do it.
        return any(hmac.compare_digest(key.encode(), k.encode()) for k in self.api_keys)

    def issue(self, request: TokenRequest) -> ClientToken:
        """Create a client token."""
        token = ClientToken(
            key=CLIENT_TOKEN_PREFIX + secrets.token_urlsafe(24),
            expires_at=self.clock() + request.expires_in,
            allowed_models=request.allowed_models,
            allowed_origins=request.allowed_origins,
            metadata=request.metadata,
            constraints=request.constraints,
        )
        register_secret(token.key)
        with self._lock:
            self._forget_old_tokens()
            self._tokens[token.key] = token
        return token

    def _forget_old_tokens(self) -> None:
        horizon = self.clock() - _EXPIRED_TOKEN_MEMORY
        for key in [k for k, t in self._tokens.items() if t.expires_at < horizon]:
            del self._tokens[key]

    def authenticate(self, key: str | None) -> ClientToken | None:
        """Check a key: None for a permanent key, the token for a live client token. Raises
        :class:`Rejected` with the text to send for a missing, unknown or expired key."""
        if not key:
            raise Rejected(f"{INVALID_API_KEY}: no api_key given")
        if self.is_permanent_key(key):
            return None
        with self._lock:
            token = self._tokens.get(key)
        if token is None:
            raise Rejected(INVALID_API_KEY)
        if self.clock() >= token.expires_at:
            raise Rejected(TOKEN_EXPIRED)
        return token


def permit(token: ClientToken | None, *, model: str, origin: str | None) -> Grant:
    """Check what an authenticated key may do: open ``model`` from ``origin`` (the WebSocket
    ``Origin`` header). Raises :class:`Rejected` with the text to send."""
    if token is None:
        return Grant(client_token=False)
    if token.allowed_models is not None and model not in token.allowed_models:
        raise Rejected(f"Permission denied: model {model!r} is not allowed for this token")
    if token.allowed_origins is not None:
        allowed = {_normalise_origin(o) for o in token.allowed_origins}
        if origin is None or _normalise_origin(origin) not in allowed:
            shown = repr(origin) if origin is not None else "(none sent)"
            raise Rejected(f"Permission denied: origin {shown} is not allowed for this token")
    return Grant(client_token=True, max_session_duration=token.max_session_duration)
