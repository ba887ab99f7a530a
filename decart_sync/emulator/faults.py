"""Server-wide fault settings that tests switch on to see how clients cope.

Faults aimed at one session (drop its WebSocket, fail its peer connection, freeze its video,
end it) act on the session directly; see ``EmulatorServer``. This module holds the ones that
change how the whole server behaves until they are cleared: acknowledgements delayed or withheld,
the next N producer connections rejected, the next N LiveKit sessions queued for a while before
they get their room (``queue_position`` messages, as the service sends when it is busy), and the
answer's candidates trickled as ``ice-candidate`` messages (which the service never sends, and
Decart's official Python client logs as an error).
"""

from __future__ import annotations

import attrs

from decart_sync._protocol import CAPACITY_ERROR


class UnknownSession(LookupError):
    """A fault aimed at a session id the emulator does not hold."""


@attrs.define
class FaultPlan:
    """The server-wide faults in effect. Used on the emulator's loop only."""

    #: Every ``prompt_ack``/``set_image_ack`` is sent this many seconds late.
    ack_delay: float = 0.0
    #: Acks are not sent at all while this is on; the ones held back are never sent.
    acks_withheld: bool = False
    #: This many further producer connections are rejected with ``rejection_error``.
    rejections_left: int = 0
    rejection_error: str = CAPACITY_ERROR
    #: Each answer is followed by its candidates as ``ice-candidate`` messages.
    trickle_candidates: bool = False
    #: This many further ``livekit_join``\ s wait ``queue_seconds`` in the queue.
    queued_left: int = 0
    queue_seconds: float = 0.0

    def take_rejection(self) -> str | None:
        """The error text for a new producer connection that must be rejected, else None."""
        if self.rejections_left <= 0:
            return None
        self.rejections_left -= 1
        return self.rejection_error

    def take_queue_slot(self) -> float | None:
        """How long a new ``livekit_join`` must wait in the queue, or None: no queue."""
        if self.queued_left <= 0:
            return None
        self.queued_left -= 1
        return self.queue_seconds

    def clear(self) -> None:
        self.ack_delay = 0.0
        self.acks_withheld = False
        self.rejections_left = 0
        self.rejection_error = CAPACITY_ERROR
        self.trickle_candidates = False
        self.queued_left = 0
        self.queue_seconds = 0.0


def validate_delay(seconds: object, what: str) -> float:
    """A fault duration: a finite, non-negative number of seconds (ValueError otherwise)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {seconds!r}")
    value = float(seconds)
    if not 0 <= value < float("inf"):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {seconds!r}")
    return value


def validate_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    return n
