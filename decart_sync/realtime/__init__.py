"""Realtime sessions: the blocking facade over Decart's realtime service.

Mirrors the seed's ``decart.realtime`` module, without ``await``::

    from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions

Every public name is here; the modules behind them are private.
"""

from decart_sync._protocol import (
    GenerationEndedMessage,
    GenerationTickMessage,
    QueuePositionMessage,
)
from decart_sync.realtime._events import ConnectionState
from decart_sync.realtime._frames import FrameConsumer, FrameHub, FrameInfo
from decart_sync.realtime._options import RealtimeConnectOptions, SubscribeOptions
from decart_sync.realtime._retry import ReconnectPolicy
from decart_sync.realtime._session import RealtimeClient, SubscribeClient
from decart_sync.realtime._stats import SessionStats
from decart_sync.realtime._transports import Transport

__all__ = [
    "ConnectionState",
    "FrameConsumer",
    "FrameHub",
    "FrameInfo",
    "GenerationEndedMessage",
    "GenerationTickMessage",
    "QueuePositionMessage",
    "RealtimeClient",
    "RealtimeConnectOptions",
    "ReconnectPolicy",
    "SessionStats",
    "SubscribeClient",
    "SubscribeOptions",
    "Transport",
]
