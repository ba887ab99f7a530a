"""The reconnect policy, as small pure functions so it can be tested without waiting.

Protocol section 7: reconnect only after the session had been connected and the drop was not
asked for; up to 5 attempts; exponential backoff between 1 s and 10 s; permanent errors (auth,
permission) are never retried.
"""

from __future__ import annotations

import random

import attrs

from decart_sync import _protocol
from decart_sync.errors import (
    DecartSDKError,
    InsufficientCreditsError,
    InvalidAPIKeyError,
    InvalidInputError,
    ModelNotFoundError,
)
from decart_sync.realtime._transports import LegacyServer


@attrs.frozen
class ReconnectPolicy:
    """How the session retries after an unexpected drop. ``attempts=0`` disables reconnect."""

    attempts: int = 5
    min_delay: float = 1.0
    max_delay: float = 10.0
    jitter: float = 0.2

    def __attrs_post_init__(self) -> None:
        if self.attempts < 0 or self.min_delay < 0 or self.max_delay < self.min_delay:
            raise InvalidInputError(
                "ReconnectPolicy needs attempts >= 0 and 0 <= min_delay <= max_delay"
            )
        if not 0 <= self.jitter < 1:
            raise InvalidInputError("ReconnectPolicy.jitter must be in [0, 1)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based): doubling from ``min_delay``,
        capped at ``max_delay``, with +-jitter so that many clients do not retry in step."""
        base = min(self.max_delay, self.min_delay * float(2 ** max(0, attempt - 1)))
        spread = float((rng or random).uniform(-self.jitter, self.jitter)) if self.jitter else 0.0
        return min(self.max_delay, max(self.min_delay, base * (1 + spread)))


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: auth and permission failures, unknown models, and an account
    out of credits (a new connection would be refused for the same reason), a server that does
    not speak the transport asked for."""
    if isinstance(
        error,
        (
            InvalidAPIKeyError,
            ModelNotFoundError,
            InvalidInputError,
            InsufficientCreditsError,
            LegacyServer,
        ),
    ):
        return True
    if isinstance(error, DecartSDKError):
        return _protocol.is_permanent_error(error.message)
    return False
