"""The wire protocol of Decart's realtime service: URLs, messages, tokens and error texts.

Shared by the client and the emulator, and importing neither, so that both speak exactly the same
protocol. Messages are small frozen classes; :func:`parse_server_message` and
:func:`parse_client_message` turn JSON text into them and reject anything malformed with
:class:`ProtocolViolation`, whose text is fit to send back to a peer.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from decart_sync._redact import SecretText
from decart_sync._version import __version__
from decart_sync.errors import (
    DecartSDKError,
    InsufficientCreditsError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    ModelNotFoundError,
    ServerAtCapacityError,
    SignalingError,
)

DEFAULT_BASE_URL: Final = "https://api.decart.ai"
DEFAULT_REALTIME_BASE_URL: Final = "wss://api.decart.ai"
OFFICIAL_STUN_URL: Final = "stun:stun.l.google.com:19302"
TOKENS_PATH: Final = "/v1/client/tokens"

PROMPT_ACK_TIMEOUT: Final = 15.0
SET_IMAGE_ACK_TIMEOUT: Final = 30.0

CAPACITY_ERROR: Final = "Server at capacity. Please try again later."
# The organisation's concurrent-session limit (sent before a close with code 1013): like the
# capacity error, it means "try again later".
CONCURRENCY_LIMIT_ERROR: Final = "Concurrent session limit reached."
INSUFFICIENT_CREDITS: Final = "insufficient_credits"
#: Every ``generation_ended.reason`` the service sends (protocol section 2).
GENERATION_END_REASONS: Final = (
    "disconnect",
    "timeout",
    "moderation_violation",
    "error",
    INSUFFICIENT_CREDITS,
)
# An error whose lower-cased text contains one of these is permanent: never retried.
PERMANENT_ERROR_MARKERS: Final = (
    "invalid api key",
    "unauthorized",
    "401",
    "permission denied",
    "not allowed",
    "invalid session",
)


class ProtocolViolation(Exception):
    """A message that does not follow the protocol. The text says what was wrong."""


class Omitted:
    """Marks a field that is left out of a message, as opposed to sent as ``null``."""

    _instance: ClassVar[Omitted | None] = None

    def __new__(cls) -> Omitted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OMITTED"

    def __bool__(self) -> bool:
        return False


OMITTED: Final = Omitted()


# --------------------------------------------------------------------------- URLs


def user_agent(integration: str | None = None) -> str:
    """The ``user_agent`` the SDK sends: ``decart-sync/<version> lang/py [integration]``."""
    base = f"decart-sync/{__version__} lang/py"
    return f"{base} {integration}" if integration else base


def websocket_base(url: str) -> str:
    """Turn a realtime base URL into a ``ws://``/``wss://`` one without a trailing slash."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts is None or parts.scheme.lower() not in schemes or not parts.netloc:
        raise InvalidBaseURLError(
            f"invalid realtime base URL {url!r}: use ws://, wss://, http:// or https:// with a host"
        )
    scheme = schemes[parts.scheme.lower()]
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def http_base(url: str) -> str:
    """Validate a REST base URL (``http``/``https``) and drop its trailing slash."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidBaseURLError(f"invalid base URL {url!r}: use http:// or https:// with a host")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def realtime_base_for(rest_base: str | None, realtime_base: str | None = None) -> str:
    """The realtime base URL: the one given, else the REST base's own origin (an emulator or a
    proxy serves both on one origin), else Decart's realtime host (for Decart's REST host, or
    when nothing is given). The one rule every entry point follows."""
    if realtime_base:
        return websocket_base(realtime_base)
    if rest_base and urlsplit(http_base(rest_base)).hostname != urlsplit(DEFAULT_BASE_URL).hostname:
        return websocket_base(rest_base)
    return DEFAULT_REALTIME_BASE_URL


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)


def realtime_url(
    realtime_base: str,
    *,
    url_path: str,
    model: str,
    api_key: str,
    agent: str,
    resolution: str | None = None,
    speed: str | None = None,
) -> str:
    """The producer session URL (protocol section 1)."""
    pairs = [("api_key", api_key), ("model", model)]
    if resolution is not None:
        pairs.append(("resolution", resolution))
    if speed is not None:
        pairs.append(("speed", speed))
    pairs.append(("user_agent", agent))
    return SecretText(f"{websocket_base(realtime_base)}{url_path}?{_query(pairs)}")


def watch_stream_url(realtime_base: str, room_name: str) -> str:
    """Where a LiveKit viewer asks for room credentials: the realtime base over HTTP(S)."""
    base = websocket_base(realtime_base)
    base = "https://" + base[len("wss://") :] if base.startswith("wss://") else base
    base = "http://" + base[len("ws://") :] if base.startswith("ws://") else base
    return f"{base}/watch-stream/{quote(room_name, safe='')}"


def subscribe_url(realtime_base: str, token: SubscribeToken, *, api_key: str, agent: str) -> str:
    """The viewer URL for a subscribe token (protocol section 1)."""
    query = _query(
        [("IP", token.ip), ("port", str(token.port)), ("api_key", api_key), ("user_agent", agent)]
    )
    return SecretText(
        f"{websocket_base(realtime_base)}/subscribe/{quote(token.sid, safe='')}?{query}"
    )


# --------------------------------------------------------------------------- subscribe tokens


@attrs.frozen
class SubscribeToken:
    """What a subscribe token carries: the session id and the server holding it."""

    sid: str
    ip: str
    port: int

    def encode(self) -> str:
        payload = json.dumps({"sid": self.sid, "ip": self.ip, "port": self.port})
        return base64.urlsafe_b64encode(payload.encode()).decode()

    @classmethod
    def decode(cls, token: str) -> SubscribeToken:
        """Parse a token; anything but base64 JSON with ``sid``, ``ip``, ``port`` is invalid."""
        hint = "pass the producer's session.subscribe_token unchanged"
        if not isinstance(token, str) or not token.strip():
            raise InvalidInputError(f"invalid subscribe token: empty or not a string; {hint}")
        try:
            data = json.loads(base64.urlsafe_b64decode(token.strip().encode()))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidInputError(f"invalid subscribe token: not base64 JSON; {hint}") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("sid"), str)
            or not isinstance(data.get("ip"), str)
            or isinstance(data.get("port"), bool)
            or not isinstance(data.get("port"), int)
            or not data["sid"]
        ):
            raise InvalidInputError(f"invalid subscribe token: needs sid, ip and port; {hint}")
        return cls(data["sid"], data["ip"], data["port"])


@attrs.frozen
class RoomToken:
    """A LiveKit-era subscribe token: the room a viewer joins (protocol section 5)."""

    room_name: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(json.dumps({"room_name": self.room_name}).encode()).decode()


def parse_subscribe_token(token: object) -> SubscribeToken | RoomToken:
    """Either kind of subscribe token, in URL-safe or standard base64 (Python clients make the
    first, JS clients the second). Anything else is an :class:`InvalidInputError`."""
    hint = "pass the producer's session.subscribe_token unchanged"
    if not isinstance(token, str) or not token.strip():
        raise InvalidInputError(f"invalid subscribe token: empty or not a string; {hint}")
    text = token.strip().replace("-", "+").replace("_", "/")
    try:
        data = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInputError(f"invalid subscribe token: not base64 JSON; {hint}") from None
    if isinstance(data, dict) and isinstance(data.get("room_name"), str) and data["room_name"]:
        return RoomToken(data["room_name"])
    return SubscribeToken.decode(token)


# --------------------------------------------------------------------------- client tokens

#: Limits of ``POST /v1/client/tokens`` (protocol section 6).
TOKEN_DEFAULT_LIFETIME: Final = 60
TOKEN_MAX_LIFETIME: Final = 3600
TOKEN_MAX_LIST_ITEMS: Final = 20


@attrs.frozen
class TokenRequest:
    """The body of a client-token request: only the fields set go on the wire. The client
    builds it, the emulator parses it, and both check it by the same rules here."""

    expires_in: int | None = None
    allowed_models: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None

    _WIRE: ClassVar[dict[str, str]] = {
        "expires_in": "expiresIn",
        "allowed_models": "allowedModels",
        "allowed_origins": "allowedOrigins",
        "metadata": "metadata",
        "constraints": "constraints",
    }

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, wire in self._WIRE.items():
            value = getattr(self, name)
            if value is not None:
                body[wire] = list(value) if isinstance(value, tuple) else value
        return body

    @classmethod
    def parse(cls, body: object) -> TokenRequest:
        """A decoded JSON body, strictly; anything off the contract is a ProtocolViolation
        naming the field (by its wire name)."""
        if not isinstance(body, dict):
            raise ProtocolViolation(f"body must be a JSON object, got {type(body).__name__}")
        unknown = sorted(set(body) - set(cls._WIRE.values()))
        if unknown:
            fields = ", ".join(cls._WIRE.values())
            raise ProtocolViolation(f"unknown field {unknown[0]!r}; the fields are {fields}")
        expires_in = body.get("expiresIn")
        if expires_in is not None:
            if isinstance(expires_in, bool) or not isinstance(expires_in, int):
                raise ProtocolViolation(f"expiresIn must be an integer, got {expires_in!r}")
            if not 1 <= expires_in <= TOKEN_MAX_LIFETIME:
                raise ProtocolViolation(
                    f"expiresIn must be between 1 and {TOKEN_MAX_LIFETIME} seconds, "
                    f"got {expires_in}"
                )
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ProtocolViolation(f"metadata must be an object, got {type(metadata).__name__}")
        return cls(
            expires_in=expires_in,
            allowed_models=_token_strings("allowedModels", body.get("allowedModels")),
            allowed_origins=_token_strings("allowedOrigins", body.get("allowedOrigins")),
            metadata=metadata,
            constraints=_token_constraints(body.get("constraints")),
        )


def _token_strings(name: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ProtocolViolation(f"{name} must be a list of strings, got {type(value).__name__}")
    if len(value) > TOKEN_MAX_LIST_ITEMS:
        raise ProtocolViolation(
            f"{name} takes at most {TOKEN_MAX_LIST_ITEMS} items, got {len(value)}"
        )
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ProtocolViolation(f"{name} items must be non-empty strings, got {item!r}")
    return tuple(value)


def _token_constraints(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolViolation(f"constraints must be an object, got {type(value).__name__}")
    realtime = value.get("realtime")
    if realtime is not None:
        if not isinstance(realtime, dict):
            raise ProtocolViolation(
                f"constraints.realtime must be an object, got {type(realtime).__name__}"
            )
        duration = realtime.get("maxSessionDuration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0
        ):
            raise ProtocolViolation(
                "constraints.realtime.maxSessionDuration must be a positive integer of seconds, "
                f"got {duration!r}"
            )
    return value


# --------------------------------------------------------------------------- error texts


def is_permanent_error(text: str) -> bool:
    """Whether a server error text means retrying cannot help (auth and permission errors)."""
    lowered = text.lower()
    return any(marker in lowered for marker in PERMANENT_ERROR_MARKERS)


def error_from_server(text: str) -> DecartSDKError:
    """The SDK error that a server's error text stands for."""
    lowered = text.lower()
    if text.strip() in (CAPACITY_ERROR, CONCURRENCY_LIMIT_ERROR) or "at capacity" in lowered:
        return ServerAtCapacityError(text)
    if INSUFFICIENT_CREDITS in lowered:
        return InsufficientCreditsError(text)
    if "model" in lowered and "not found" in lowered:
        return ModelNotFoundError(text)
    if lowered.startswith(("invalid image", "prompt must not be")):
        # The server refused what the caller sent: the caller's input, not the connection.
        return InvalidInputError(text)
    if is_permanent_error(text):
        return InvalidAPIKeyError(text)
    return SignalingError(text)


# --------------------------------------------------------------------------- messages


@attrs.frozen
class IceCandidate:
    """A trickled ICE candidate as the JSON carries it. Browsers may send null for
    ``sdpMid``/``sdpMLineIndex`` (and an extra ``usernameFragment``, which is not kept)."""

    candidate: str
    sdpMLineIndex: int | None  # wire field name
    sdpMid: str | None  # wire field name


class _Message:
    type: ClassVar[str]

    def to_json(self) -> str:
        body: dict[str, Any] = {"type": self.type}
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is OMITTED:
                continue
            body[field.name] = attrs.asdict(value) if attrs.has(type(value)) else value
        return json.dumps(body)


@attrs.frozen
class PromptMessage(_Message):
    type: ClassVar[str] = "prompt"
    prompt: str
    enhance_prompt: bool = True


@attrs.frozen
class SetImageMessage(_Message):
    type: ClassVar[str] = "set_image"
    image_data: str | None
    prompt: str | Omitted | None = OMITTED
    enhance_prompt: bool | Omitted = OMITTED


@attrs.frozen
class OfferMessage(_Message):
    type: ClassVar[str] = "offer"
    sdp: str


@attrs.frozen
class IceCandidateMessage(_Message):
    type: ClassVar[str] = "ice-candidate"
    candidate: IceCandidate


@attrs.frozen
class EndOfCandidatesMessage(_Message):
    """``{"type": "ice-candidate", "candidate": null}``: a browser's last trickled candidate."""

    type: ClassVar[str] = "ice-candidate"
    candidate: None = None


@attrs.frozen
class LiveKitJoinMessage(_Message):
    """Ask for a LiveKit room (the current transport). ``passthrough``: the caller set no initial
    prompt or image (JS clients send it; Python 0.2.4 sends no field)."""

    type: ClassVar[str] = "livekit_join"
    passthrough: bool | Omitted = OMITTED


@attrs.frozen
class AnswerMessage(_Message):
    type: ClassVar[str] = "answer"
    sdp: str


@attrs.frozen
class SessionIdMessage(_Message):
    type: ClassVar[str] = "session_id"
    session_id: str
    server_ip: str
    server_port: int


@attrs.frozen
class PromptAckMessage(_Message):
    type: ClassVar[str] = "prompt_ack"
    prompt: str
    success: bool
    error: str | None = None


@attrs.frozen
class SetImageAckMessage(_Message):
    type: ClassVar[str] = "set_image_ack"
    success: bool
    error: str | None = None


@attrs.frozen
class ErrorMessage(_Message):
    type: ClassVar[str] = "error"
    error: str


@attrs.frozen
class ReadyMessage(_Message):
    type: ClassVar[str] = "ready"


@attrs.frozen
class QueuePositionMessage(_Message):
    """The service queues the session before handing it a room; zero or more of these."""

    type: ClassVar[str] = "queue_position"
    position: int
    queue_size: int


@attrs.frozen
class LiveKitRoomInfoMessage(_Message):
    """The room to join: its server's URL, an access token for it, and the session's id."""

    type: ClassVar[str] = "livekit_room_info"
    livekit_url: str
    token: str = attrs.field(repr=lambda _: "'***'")
    room_name: str
    session_id: str


@attrs.frozen
class GenerationStartedMessage(_Message):
    type: ClassVar[str] = "generation_started"


@attrs.frozen
class GenerationTickMessage(_Message):
    """Sent about once a second while generating; ``seconds`` generated so far (billing)."""

    type: ClassVar[str] = "generation_tick"
    seconds: int


@attrs.frozen
class GenerationEndedMessage(_Message):
    type: ClassVar[str] = "generation_ended"
    seconds: int
    reason: str


ClientMessage = (
    PromptMessage
    | SetImageMessage
    | LiveKitJoinMessage
    | OfferMessage
    | IceCandidateMessage
    | EndOfCandidatesMessage
)
ServerMessage = (
    AnswerMessage
    | IceCandidateMessage
    | EndOfCandidatesMessage
    | SessionIdMessage
    | PromptAckMessage
    | SetImageAckMessage
    | ErrorMessage
    | ReadyMessage
    | QueuePositionMessage
    | LiveKitRoomInfoMessage
    | GenerationStartedMessage
    | GenerationTickMessage
    | GenerationEndedMessage
)


class _Fields:
    """Typed access to one message's JSON fields, raising ProtocolViolation on a wrong type."""

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def _bad(self, name: str, expected: str) -> ProtocolViolation:
        if name not in self.data:
            return ProtocolViolation(f"'{self.kind}' message is missing field '{name}'")
        got = type(self.data[name]).__name__
        return ProtocolViolation(f"'{self.kind}' field '{name}' must be {expected}, got {got}")

    def text(self, name: str, *, nullable: bool = False, optional: bool = False) -> Any:
        if name not in self.data and optional:
            return OMITTED
        value = self.data.get(name, OMITTED)
        if isinstance(value, str) or (nullable and value is None):
            return value
        raise self._bad(name, "a string or null" if nullable else "a string")

    def flag(self, name: str, *, optional: bool = False, default: Any = OMITTED) -> Any:
        if name not in self.data and optional:
            return default
        value = self.data.get(name)
        if isinstance(value, bool):
            return value
        raise self._bad(name, "true or false")

    def integer(self, name: str) -> int:
        value = self.data.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._bad(name, "an integer")

    def nullable_integer(self, name: str) -> int | None:
        if self.data.get(name, OMITTED) is None:
            return None
        try:
            return self.integer(name)
        except ProtocolViolation:
            raise self._bad(name, "an integer or null") from None

    def optional_error(self) -> str | None:
        value = self.data.get("error")
        if value is None or isinstance(value, str):
            return value
        raise self._bad("error", "a string or null")

    def candidate(self) -> IceCandidateMessage | EndOfCandidatesMessage:
        raw = self.data.get("candidate", OMITTED)
        if raw is None:
            return EndOfCandidatesMessage()
        if not isinstance(raw, dict):
            raise self._bad("candidate", "an object or null")
        inner = _Fields("ice-candidate.candidate", raw)
        # A browser's RTCIceCandidate.toJSON() gives null for an unknown sdpMid/sdpMLineIndex,
        # so both must be present but either may be null.
        return IceCandidateMessage(
            IceCandidate(
                inner.text("candidate"),
                inner.nullable_integer("sdpMLineIndex"),
                inner.text("sdpMid", nullable=True),
            )
        )


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` whose every failure is a :class:`ProtocolViolation`.

    A peer controls the text, and nesting it a thousand levels deep makes the parser raise
    ``RecursionError``, which is no ``ValueError``: uncaught, it would kill whatever thread read it.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolViolation("invalid message: not valid JSON") from None


def _decode(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("invalid message: not UTF-8 text") from None
    data = parse_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolViolation("invalid message: expected a JSON object with a string 'type'")
    return data


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse what a client sends; strict, as the service is."""
    data = _decode(text)
    kind = data["type"]
    f = _Fields(kind, data)
    if kind == "prompt":
        enhance = f.flag("enhance_prompt", optional=True, default=True)
        return PromptMessage(f.text("prompt"), enhance)
    if kind == "set_image":
        return SetImageMessage(
            f.text("image_data", nullable=True),
            f.text("prompt", nullable=True, optional=True),
            f.flag("enhance_prompt", optional=True),
        )
    if kind == "livekit_join":
        # Optional `client_capabilities` is accepted and not kept: nothing here depends on it.
        if not isinstance(data.get("client_capabilities", {}), dict):
            raise ProtocolViolation("invalid livekit_join: 'client_capabilities' must be an object")
        return LiveKitJoinMessage(f.flag("passthrough", optional=True))
    if kind == "offer":
        return OfferMessage(f.text("sdp"))
    if kind == "ice-candidate":
        return f.candidate()
    raise ProtocolViolation(f"unknown message type {kind!r}")


def parse_server_message(text: str | bytes) -> ServerMessage | None:
    """Parse what a server sends. Unknown types give None: a newer server may send more."""
    data = _decode(text)
    kind = data["type"]
    f = _Fields(kind, data)
    if kind == "answer":
        return AnswerMessage(f.text("sdp"))
    if kind == "ice-candidate":
        return f.candidate()
    if kind == "session_id":
        return SessionIdMessage(f.text("session_id"), f.text("server_ip"), f.integer("server_port"))
    if kind == "prompt_ack":
        return PromptAckMessage(f.text("prompt"), f.flag("success"), f.optional_error())
    if kind == "set_image_ack":
        return SetImageAckMessage(f.flag("success"), f.optional_error())
    if kind == "error":
        return ErrorMessage(f.text("error"))
    if kind == "ready":
        return ReadyMessage()
    if kind == "queue_position":
        return QueuePositionMessage(f.integer("position"), f.integer("queue_size"))
    if kind == "livekit_room_info":
        return LiveKitRoomInfoMessage(
            f.text("livekit_url"), f.text("token"), f.text("room_name"), f.text("session_id")
        )
    if kind == "generation_started":
        return GenerationStartedMessage()
    if kind == "generation_tick":
        return GenerationTickMessage(f.integer("seconds"))
    if kind == "generation_ended":
        return GenerationEndedMessage(f.integer("seconds"), f.text("reason"))
    return None
