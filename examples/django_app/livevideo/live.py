"""The project's one realtime session, opened on first use and shared by every request.

Why on first use, rather than when Django starts: the SDK runs its network loop on a thread,
and threads do not survive ``fork()``. Servers such as gunicorn import the project and then fork
worker processes (with ``--preload``), so anything started at import time would be left behind
in the parent. Opening lazily puts the session in the process that serves the requests, and an
app nobody visits holds no session (which, on the real service, costs credits).
"""

from __future__ import annotations

import threading

from django.conf import settings

from decart_sync import DecartClient
from decart_sync.media import test_pattern
from decart_sync.media.mjpeg import MjpegBroadcaster
from decart_sync.realtime import RealtimeClient

# Browsers show MJPEG smoothly at 15 fps; encoding all 30 frames a second the model sends would
# double the CPU spent on JPEG for no visible gain.
MJPEG_FPS = 15.0


def client_from_settings() -> DecartClient:
    """Decart's service when ``DECART_API_KEY`` is set; otherwise an emulator in this process."""
    if settings.DECART_API_KEY:
        return DecartClient(
            api_key=settings.DECART_API_KEY,
            base_url=settings.DECART_BASE_URL,
            realtime_base_url=settings.DECART_REALTIME_BASE_URL,
        )
    # Imported here: the emulator is an optional extra, not needed against the real service.
    from decart_sync.emulator import Emulator

    emulator = Emulator().start()  # stops by itself when the process exits
    return DecartClient(
        api_key=emulator.api_key, base_url=emulator.url, realtime_base_url=emulator.realtime_url
    )


class LiveStream:
    """The session, its MJPEG broadcaster, and what visitors asked for last (so a replacement
    session starts where the previous one was)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: DecartClient | None = None
        self._session: RealtimeClient | None = None
        self._broadcaster: MjpegBroadcaster | None = None
        self.prompt: str = settings.DECART_PROMPT
        self.image: bytes | None = None

    def client(self) -> DecartClient:
        with self._lock:
            return self._client_locked()

    def _client_locked(self) -> DecartClient:
        if self._client is None:
            self._client = client_from_settings()
        return self._client

    def session(self) -> tuple[RealtimeClient, MjpegBroadcaster]:
        """The live session and its broadcaster, connecting first if there is none."""
        # Connecting under the lock: concurrent first requests share one session.
        with self._lock:
            if self._session is not None and self._session.get_connection_state() == "disconnected":
                self._close_session_locked()  # it ended for good; start a fresh one
            if self._session is None or self._broadcaster is None:
                session = self._client_locked().realtime.connect(
                    settings.DECART_MODEL,
                    test_pattern(),  # use camera(0) from decart_sync.media for a webcam
                    prompt=self.prompt,
                    image=self.image,
                    timeout=30,
                )
                self._session = session
                self._broadcaster = MjpegBroadcaster(session, max_fps=MJPEG_FPS)
            return self._session, self._broadcaster

    def current(self) -> tuple[RealtimeClient | None, MjpegBroadcaster | None]:
        """The session and broadcaster if open, without opening them (for status checks)."""
        return self._session, self._broadcaster

    def _close_session_locked(self) -> None:
        if self._broadcaster is not None:
            self._broadcaster.close()  # ends every viewer's stream
        if self._session is not None:
            self._session.disconnect()
        self._session = self._broadcaster = None

    def close(self) -> None:
        """Disconnect and forget everything; the next request starts afresh."""
        with self._lock:
            self._close_session_locked()
            if self._client is not None:
                self._client.close()
                self._client = None
            self.prompt, self.image = settings.DECART_PROMPT, None


stream = LiveStream()
