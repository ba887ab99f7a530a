"""LiveKit's signal channel on one WebSocket: binary protobuf frames, and ICE candidates as JSON.

Each binary frame the client sends is one ``livekit.SignalRequest``; each the server sends is one
``livekit.SignalResponse`` (``livekit-protocol``). A frame that does not parse is logged and
skipped, as LiveKit's clients do with the server's. Candidates travel inside ``TrickleRequest``
as a browser's ``RTCIceCandidateInit`` in JSON. The server trickles none of its own: aiortc
writes every candidate into its SDP, which libwebrtc reads as well as a trickled one (and the
``livekit`` SDK parses trickled ones with ``unwrap()``: a malformed one would kill the client).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCIceCandidate
from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

from decart_sync._ice import parse_candidate
from decart_sync._protocol import IceCandidate
from decart_sync._redact import get_logger

_log = get_logger(__name__)

# Far above any signal message (an SDP with a few dozen m-lines is ~20 KB).
MAX_FRAME_BYTES = 1 << 20
# A join request carries one offer; inflated, it is a few KB. The bound keeps a hostile
# gzip stream from inflating without limit.
MAX_JOIN_REQUEST_BYTES = 1 << 20


class SignalSocket:
    """One participant's signal WebSocket. Sending on a closed socket is a no-op."""

    def __init__(self, ws: web.WebSocketResponse, label: str) -> None:
        self.ws = ws
        self.label = label

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, **message: Any) -> None:
        """Send ``SignalResponse(**message)``, e.g. ``send(pong_resp=rtc.Pong(...))``."""
        if self.ws.closed:
            return
        try:
            await self.ws.send_bytes(rtc.SignalResponse(**message).SerializeToString())
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away between the check and the write; the reader will see it.
            _log.debug("%s: send failed: %s", self.label, exc)

    async def requests(self, idle_timeout: float) -> AsyncIterator[rtc.SignalRequest]:
        """Every request until the client closes, or sends nothing (not even a ping) for
        ``idle_timeout`` seconds."""
        while True:
            try:
                frame = await self.ws.receive(timeout=idle_timeout)
            except asyncio.TimeoutError:
                _log.info("%s: nothing received for %ss; closing", self.label, idle_timeout)
                return
            if frame.type == aiohttp.WSMsgType.BINARY:
                request = rtc.SignalRequest()
                try:
                    request.ParseFromString(frame.data)
                except DecodeError:
                    _log.warning("%s: a frame that is not a SignalRequest; skipped", self.label)
                    continue
                yield request
            elif frame.type == aiohttp.WSMsgType.TEXT:
                _log.warning("%s: a text frame on the signal channel; skipped", self.label)
            else:  # close, closing, closed or error
                return

    async def close(self) -> None:
        await self.ws.close()


def leave_request(reason: models.DisconnectReason, *, rejoin: bool = False) -> rtc.LeaveRequest:
    """The ``leave`` a server sends a participant away with. ``rejoin``: the client should
    connect again from scratch (the SDK's ``RECONNECT`` action); otherwise it disconnects."""
    return rtc.LeaveRequest(
        can_reconnect=rejoin,
        reason=reason,
        action=rtc.LeaveRequest.Action.RECONNECT if rejoin else rtc.LeaveRequest.Action.DISCONNECT,
    )


def parse_candidate_init(text: str) -> RTCIceCandidate | None:
    """A trickled ``candidateInit`` as aiortc wants it; None for an end-of-candidates marker.
    Raises ValueError for JSON or a candidate line that cannot be parsed."""
    try:
        init = json.loads(text)
    except ValueError:
        raise ValueError("candidateInit is not JSON") from None
    if not isinstance(init, dict) or not isinstance(init.get("candidate", ""), str):
        raise ValueError("candidateInit is not an RTCIceCandidateInit object")
    mid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    return parse_candidate(
        IceCandidate(
            init.get("candidate", ""),
            index if isinstance(index, int) and not isinstance(index, bool) else None,
            mid if isinstance(mid, str) else None,
        )
    )


def parse_join_request(param: str) -> rtc.JoinRequest:
    """The ``join_request`` query parameter of a single-peer-connection join: a base64url
    ``WrappedJoinRequest`` around a ``JoinRequest``, gzipped or not. Raises ValueError."""
    try:
        wrapped = rtc.WrappedJoinRequest()
        # The SDK leaves the padding on; a client that strips it is read the same way.
        wrapped.ParseFromString(base64.urlsafe_b64decode(param + "=" * (-len(param) % 4)))
        data = wrapped.join_request
        if wrapped.compression == rtc.WrappedJoinRequest.Compression.GZIP:
            data = _gunzip(data)
        elif wrapped.compression != rtc.WrappedJoinRequest.Compression.NONE:
            raise ValueError(f"unknown compression {wrapped.compression}")
        request = rtc.JoinRequest()
        request.ParseFromString(data)
    except (binascii.Error, DecodeError, OSError, EOFError) as exc:
        raise ValueError(f"join_request does not parse: {exc}") from None
    return request


def _gunzip(data: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        inflated = stream.read(MAX_JOIN_REQUEST_BYTES + 1)
    if len(inflated) > MAX_JOIN_REQUEST_BYTES:
        raise ValueError("join_request inflates beyond 1 MiB")
    return inflated
