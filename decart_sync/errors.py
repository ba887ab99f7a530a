"""The SDK's exceptions, as one tree so callers can catch at the level they care about.

::

    DecartSDKError                      base of everything the SDK raises on purpose
    ├── InvalidAPIKeyError              no key, or the service refused it (never retried)
    ├── InvalidBaseURLError             a base URL that is not http(s)/ws(s)
    ├── InvalidInputError (ValueError)  bad arguments: empty prompt, unreadable image, bad frame
    ├── ModelNotFoundError              unknown model name
    ├── TokenCreateError                POST /v1/client/tokens failed (carries ``status``)
    ├── WebRTCError                     the realtime connection failed or was lost
    │   ├── ServerAtCapacityError       the service has no room now; try again later
    │   ├── InsufficientCreditsError    the account ran out of credits
    │   └── SignalingError              the server sent an ``error`` or a failed acknowledgement
    ├── DecartTimeoutError (TimeoutError)  a blocking call ran out of time
    ├── SessionClosedError              the session or client was closed or disconnected
    └── LoopThreadError (RuntimeError)  blocking call where it would deadlock, or after fork()

Every error has ``message`` (the text, with secrets redacted). Errors that come from the server
keep the server's text in ``message``. An error a session raises or reports also says where it
happened: ``session_id`` (None before the server named the session) and ``phase`` (``connect``,
``control``, ``reconnect`` or ``session``, for what the server said while it ran), both in its
text as well.
"""

from __future__ import annotations

from decart_sync._redact import redact

__all__ = [
    "DecartSDKError",
    "DecartTimeoutError",
    "InsufficientCreditsError",
    "InvalidAPIKeyError",
    "InvalidBaseURLError",
    "InvalidInputError",
    "LoopThreadError",
    "ModelNotFoundError",
    "ServerAtCapacityError",
    "SessionClosedError",
    "SignalingError",
    "TokenCreateError",
    "WebRTCError",
]


class DecartSDKError(Exception):
    """Base class of every error the SDK raises on purpose."""

    session_id: str | None = None
    phase: str | None = None

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def locate(self, session_id: str | None, phase: str) -> DecartSDKError:
        """Say where this error happened (the first place it is located stays)."""
        if self.phase is None:
            self.session_id, self.phase = session_id, phase
        return self

    def __str__(self) -> str:
        if self.phase is None:
            return self.message
        where = f"session {self.session_id}" if self.session_id else "no session yet"
        return f"{self.message} [{where}, {self.phase}]"


class InvalidAPIKeyError(DecartSDKError):
    """The API key is missing, or the service rejected it. Permanent: never retried."""


class InvalidBaseURLError(DecartSDKError):
    """A base URL that the SDK cannot use."""


class InvalidInputError(DecartSDKError, ValueError):
    """An argument is invalid; the message says what was wrong and what to pass instead."""


class ModelNotFoundError(DecartSDKError):
    """The model name is not a known realtime model."""


class TokenCreateError(DecartSDKError):
    """Creating a client token failed. ``status`` is the HTTP status, or None if none came."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = redact(body)


class WebRTCError(DecartSDKError):
    """The realtime connection could not be made, or it was lost."""


class ServerAtCapacityError(WebRTCError):
    """The service is at capacity. Try again later."""


class InsufficientCreditsError(WebRTCError):
    """The account has no credits left for realtime generation."""


class SignalingError(WebRTCError):
    """The server answered a request with an error (an ``error`` message or a failed ack)."""


class DecartTimeoutError(DecartSDKError, TimeoutError):
    """A blocking call did not finish within its timeout."""


class SessionClosedError(DecartSDKError):
    """The session (or client) is closed or disconnected; make a new one."""


class LoopThreadError(DecartSDKError, RuntimeError):
    """A blocking call was made where it would deadlock (on the SDK's loop thread), or the
    SDK's loop thread was inherited across ``fork()``."""
