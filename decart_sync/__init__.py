"""decart-sync: a synchronous, thread-based Python SDK for Decart's Realtime API."""

from decart_sync import models
from decart_sync._redact import get_logger as _get_logger
from decart_sync._version import __version__
from decart_sync.client import DecartClient
from decart_sync.errors import (
    DecartSDKError,
    DecartTimeoutError,
    InsufficientCreditsError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    LoopThreadError,
    ModelNotFoundError,
    ServerAtCapacityError,
    SessionClosedError,
    SignalingError,
    TokenCreateError,
    WebRTCError,
)
from decart_sync.models import ModelDefinition
from decart_sync.tokens import CreateTokenResponse
from decart_sync.types import ModelState, Prompt, SetInput

_get_logger("decart_sync")

__all__ = [
    "CreateTokenResponse",
    "DecartClient",
    "DecartSDKError",
    "DecartTimeoutError",
    "InsufficientCreditsError",
    "InvalidAPIKeyError",
    "InvalidBaseURLError",
    "InvalidInputError",
    "LoopThreadError",
    "ModelDefinition",
    "ModelNotFoundError",
    "ModelState",
    "Prompt",
    "ServerAtCapacityError",
    "SessionClosedError",
    "SetInput",
    "SignalingError",
    "TokenCreateError",
    "WebRTCError",
    "__version__",
    "models",
]
