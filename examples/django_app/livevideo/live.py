"""The project's one realtime session, opened on first use and shared by every request.

Why on first use, rather than when Django starts: the SDK runs its network loop on a thread,
and threads do not survive ``fork()``. Servers such as gunicorn import the project and then fork
worker processes (with ``--preload``), so anything started at import time would be left behind
in the parent. :class:`~decart_sync.web.SharedSession` opens the session in the process that
serves the requests, replaces it if it ends, and holds none while nobody visits (on the real
service, a session costs credits).
"""

from __future__ import annotations

from django.conf import settings

from decart_sync import DecartClient
from decart_sync.media import test_pattern
from decart_sync.offline import client_or_emulator
from decart_sync.web import SharedSession


def client_from_settings() -> DecartClient:
    """Decart's service when ``DECART_API_KEY`` is set; otherwise an emulator in this process."""
    return client_or_emulator(
        settings.DECART_API_KEY,
        base_url=settings.DECART_BASE_URL,
        realtime_base_url=settings.DECART_REALTIME_BASE_URL,
    )


stream = SharedSession(
    settings.DECART_MODEL,
    test_pattern,  # use lambda: camera(0) (from decart_sync.media) for a webcam
    client_factory=client_from_settings,
    prompt=settings.DECART_PROMPT,
)
