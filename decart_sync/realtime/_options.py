"""Options of the seed API: :class:`RealtimeConnectOptions` and :class:`SubscribeOptions`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from decart_sync.errors import InvalidInputError
from decart_sync.models import ModelDefinition
from decart_sync.realtime._retry import ReconnectPolicy
from decart_sync.realtime._transports import Transport, check_transport
from decart_sync.types import ModelState

#: Bound on connect() when the caller gives none. The official client waits 5 minutes; a blocking
#: call that hangs that long reads as a hang, so ours is shorter and always overridable.
DEFAULT_CONNECT_TIMEOUT = 30.0

RESOLUTIONS = ("720p", "1080p")
#: Video codecs a session may prefer (vp9 and av1 on the livekit transport only); None: the
#: transport's default (H.264 on livekit, as Decart's clients; aiortc's VP8 then H.264 on webrtc).
VIDEO_CODECS = ("vp8", "h264", "vp9", "av1")


def _model(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, ModelDefinition):
        raise InvalidInputError(
            "options.model must be a ModelDefinition, e.g. models.realtime('lucy-2.1'), "
            f"got {type(value).__name__}"
        )


def _optional_callable(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise InvalidInputError(f"{attribute.name} must be callable or None")


def _resolution(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in RESOLUTIONS:
        raise InvalidInputError(f"resolution must be one of {RESOLUTIONS} or None, got {value!r}")


def _codec(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in VIDEO_CODECS:
        raise InvalidInputError(f"video_codec must be one of {VIDEO_CODECS} or None, got {value!r}")


def _transport(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_transport(value)


def _state(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, ModelState):
        raise InvalidInputError(
            f"initial_state must be a ModelState or None, got {type(value).__name__}"
        )


@attrs.frozen
class RealtimeConnectOptions:
    """How to open a producer session.

    ``ice_servers``: ``None`` picks the default (none for a server on loopback, the official
    STUN server otherwise); a list (of URLs or ``aiortc.RTCIceServer``) is used as given.
    ``video_codec``: the codec to send (``"h264"``, ``"vp8"``; ``"vp9"``, ``"av1"`` on livekit);
    ``None`` is the transport's default.
    ``transport``: ``"auto"`` (``livekit`` for Decart's service, ``webrtc`` for a server on
    loopback such as the local emulator), ``"livekit"`` or ``"webrtc"``.
    """

    model: ModelDefinition = attrs.field(validator=_model)
    on_remote_stream: Callable[[Any], None] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    initial_state: ModelState | None = attrs.field(default=None, validator=_state)
    ice_servers: Sequence[Any] | None = None
    resolution: str | None = attrs.field(default=None, validator=_resolution)
    reconnect: ReconnectPolicy = attrs.field(factory=ReconnectPolicy)
    video_codec: str | None = attrs.field(default=None, validator=_codec)
    transport: Transport = attrs.field(default="auto", validator=_transport)
    #: ``"fast"`` for the models that have a fast mode (``model.speeds``); None: normal speed.
    speed: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.speed is not None and self.speed not in self.model.speeds:
            offered = ", ".join(self.model.speeds) or "none"
            raise InvalidInputError(
                f"speed {self.speed!r} is not offered by {self.model.name} (offered: {offered})"
            )


@attrs.frozen
class SubscribeOptions:
    """How to watch another session: its producer's ``subscribe_token``."""

    token: str = attrs.field(repr=lambda _: "'***'")
    on_remote_stream: Callable[[Any], None] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    ice_servers: Sequence[Any] | None = None
    #: How to watch: ``auto`` follows the token (a LiveKit-era token joins the room, a legacy
    #: one opens the legacy viewer WebSocket); ``livekit``/``webrtc`` insist on one.
    transport: Transport = attrs.field(default="auto", validator=_transport)
