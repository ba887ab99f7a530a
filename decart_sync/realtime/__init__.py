"""Realtime sessions: the blocking facade over Decart's realtime WebRTC service.

Mirrors the seed's ``decart.realtime`` module, without ``await``::

    from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions
"""

from decart_sync._protocol import GenerationTickMessage
from decart_sync.realtime.events import ConnectionState
from decart_sync.realtime.frames import FrameConsumer, FrameHub, FrameInfo
from decart_sync.realtime.options import RealtimeConnectOptions, SubscribeOptions
from decart_sync.realtime.retry import ReconnectPolicy
from decart_sync.realtime.session import RealtimeClient, SubscribeClient
from decart_sync.realtime.stats import SessionStats

__all__ = [
    "ConnectionState",
    "FrameConsumer",
    "FrameHub",
    "FrameInfo",
    "GenerationTickMessage",
    "RealtimeClient",
    "RealtimeConnectOptions",
    "ReconnectPolicy",
    "SessionStats",
    "SubscribeClient",
    "SubscribeOptions",
]
