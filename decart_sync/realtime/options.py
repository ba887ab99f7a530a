"""Options of the seed API: :class:`RealtimeConnectOptions` and :class:`SubscribeOptions`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from decart_sync.errors import InvalidInputError
from decart_sync.models import ModelDefinition
from decart_sync.realtime.retry import ReconnectPolicy
from decart_sync.types import ModelState

#: Bound on connect() when the caller gives none. The official client waits 5 minutes; a blocking
#: call that hangs that long reads as a hang, so ours is shorter and always overridable.
DEFAULT_CONNECT_TIMEOUT = 30.0

RESOLUTIONS = ("720p", "1080p")
#: Video codecs a session may prefer; None lets aiortc offer its defaults (VP8, then H.264).
VIDEO_CODECS = ("vp8", "h264")


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
    ``video_codec``: ``"vp8"`` or ``"h264"`` to prefer one codec in the offer; ``None`` offers
    aiortc's defaults, as the official client does.
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


@attrs.frozen
class SubscribeOptions:
    """How to watch another session: its producer's ``subscribe_token``."""

    token: str = attrs.field(repr=lambda _: "'***'")
    on_remote_stream: Callable[[Any], None] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    ice_servers: Sequence[Any] | None = None
