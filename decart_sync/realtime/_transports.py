"""Which media transport a session uses: the one rule behind ``transport="auto"``.

- ``webrtc`` and ``livekit`` are used as asked (``livekit`` needs the ``livekit`` package).
- ``auto`` gives ``webrtc`` for a server on a loopback address: that is the local emulator, and
  libwebrtc (inside ``livekit``) never uses loopback interfaces while aiortc does, so this works
  on any machine. Any other server gets ``livekit``, what Decart's service and its current
  clients speak, with a fallback to ``webrtc`` on the same WebSocket if the server refuses
  ``livekit_join`` as an unknown message. Without the ``livekit`` package, ``auto`` uses
  ``webrtc`` and says so once.

The choice is made from the URL alone, before anything is sent.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from decart_sync import _ice
from decart_sync._redact import get_logger
from decart_sync.errors import InvalidInputError, SignalingError

_log = get_logger(__name__)

Transport = Literal["auto", "livekit", "webrtc"]
TRANSPORTS: Final = ("auto", "livekit", "webrtc")
#: Codecs each transport can send: aiortc's, and the ones Decart's JS client offers on LiveKit.
CODECS: Final = {"webrtc": ("vp8", "h264"), "livekit": ("h264", "vp8", "vp9", "av1")}

_warned = threading.Event()


class LegacyServer(SignalingError):
    """The server refused ``livekit_join`` as an unknown message: it speaks only ``webrtc``."""

    def __init__(self, server_said: str) -> None:
        super().__init__(
            f"the server does not know the livekit transport ({server_said}); "
            "connect with transport='webrtc', or 'auto' to fall back by itself"
        )


@attrs.frozen
class Choice:
    transport: Literal["livekit", "webrtc"]
    #: ``livekit`` chosen by ``auto``: a server that does not know it gets ``webrtc``.
    fallback: bool = False


def livekit_available() -> bool:
    try:
        return importlib.util.find_spec("livekit.rtc") is not None
    except ModuleNotFoundError:  # no livekit package at all
        return False


def check_transport(value: object) -> Transport:
    if value not in TRANSPORTS:
        raise InvalidInputError(f"transport must be one of {', '.join(TRANSPORTS)}, got {value!r}")
    return value  # type: ignore[return-value]


def choose(requested: Transport, url: str, video_codec: str | None = None) -> Choice:
    """The transport for a session whose control WebSocket is at ``url``."""
    check_transport(requested)
    if requested == "webrtc":
        choice = Choice("webrtc")
    elif requested == "livekit":
        if not livekit_available():
            raise InvalidInputError(
                "transport='livekit' needs the livekit package: pip install livekit"
            )
        choice = Choice("livekit")
    elif _ice.is_loopback_host(urlsplit(url).hostname):
        choice = Choice("webrtc")
    elif livekit_available():
        choice = Choice("livekit", fallback=True)
    else:
        if not _warned.is_set():
            _warned.set()
            _log.warning(
                "the livekit package is not installed: using the legacy webrtc transport, "
                "which Decart's service may no longer accept (pip install livekit)"
            )
        choice = Choice("webrtc")
    if video_codec is not None and video_codec not in CODECS[choice.transport]:
        raise InvalidInputError(
            f"video_codec {video_codec!r} is not sent by the {choice.transport} transport "
            f"(it sends {', '.join(CODECS[choice.transport])})"
        )
    return choice
