"""A LiveKit-compatible room server inside the emulator: the media transport of today's service.

Decart's service hands a session's client a LiveKit room (protocol.md sections 3 and 9); the
client joins it with the ``livekit`` SDK, publishes its camera and subscribes to the video of the
``inference-server-*`` participant. This package hosts such rooms on the emulator's aiohttp app,
with aiortc for media, ``livekit-protocol`` for the signal messages and ``livekit-api`` for the
access tokens. It implements what the SDK needs to join, publish one video track and receive
the transformed video, nothing more: no simulcast, no forwarding between participants, no
resume (a client that loses its connection rejoins).

Modules, in the order data flows:

- :mod:`.host`: :class:`RoomHost`, which opens and closes rooms and serves the HTTP routes;
- :mod:`.grants`: access tokens, minted and checked;
- :mod:`.wire`: the signal WebSocket's protobuf frames and trickled candidates;
- :mod:`.participant`: one client's signal conversation;
- :mod:`.transport`: one of a participant's two peer connections;
- :mod:`.room`: a room's participants and its inference server;
- :mod:`.media`: :class:`RoomMedia`, what a room reads and shows (a session's frame pipeline).
"""

from __future__ import annotations

from decart_sync.emulator.livekit.host import DEFAULT_PREFIX, RoomHost, RoomTicket, server_url
from decart_sync.emulator.livekit.media import PipelineMedia, RoomMedia
from decart_sync.emulator.livekit.room import INFERENCE_IDENTITY

__all__ = [
    "DEFAULT_PREFIX",
    "INFERENCE_IDENTITY",
    "PipelineMedia",
    "RoomHost",
    "RoomMedia",
    "RoomTicket",
    "server_url",
]
