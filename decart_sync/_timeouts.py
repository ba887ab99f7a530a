"""The one check every public ``timeout=`` argument goes through.

A timeout reaches ``threading`` and ``asyncio`` waits, which misbehave on values a user can pass
by mistake: ``inf`` overflows them, ``nan`` compares false with everything (a wait loop spins on
it), and a negative number or a bool means nothing. Each is refused here with
:class:`InvalidInputError` before any wait starts.
"""

from __future__ import annotations

import math

from decart_sync.errors import InvalidInputError


def _seconds(value: object, name: str, *, allow_zero: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        least = ">= 0" if allow_zero else "> 0"
        raise InvalidInputError(
            f"{name} must be a finite number of seconds {least} (or None), got {value!r}"
        )
    return float(value)


def wait_timeout(value: float | None, name: str = "timeout") -> float | None:
    """For waits where None means "as long as it takes" and 0 means "do not wait"."""
    return None if value is None else _seconds(value, name, allow_zero=True)


def limit_timeout(value: float | None, default: float, name: str = "timeout") -> float:
    """For operations that always have a limit: None means ``default``; 0 is refused, since
    nothing that crosses the network can finish in no time."""
    return default if value is None else _seconds(value, name, allow_zero=False)
