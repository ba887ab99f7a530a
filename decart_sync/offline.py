"""A client that needs no API key: Decart's service when there is a key, else a local emulator.

For examples, demos and development, so that one script runs offline as it is and against
Decart's service once ``DECART_API_KEY`` is set::

    from decart_sync.media import test_pattern
    from decart_sync.offline import client_or_emulator

    with client_or_emulator() as client:
        session = client.realtime.connect("lucy-2.1", test_pattern(), prompt="sketch")

This module exists to join the two sides (the client never imports the emulator, nor the
emulator the client). The emulator is an optional extra (aiohttp, installed with
``decart-sync[emulator]``), so it is imported only when there is no key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from decart_sync.client import DecartClient
from decart_sync.errors import InvalidAPIKeyError

if TYPE_CHECKING:
    from decart_sync.emulator import Emulator

__all__ = ["client_or_emulator"]


def client_or_emulator(
    api_key: str | None = None,
    *,
    base_url: str | None = None,
    realtime_base_url: str | None = None,
) -> DecartClient:
    """A :class:`DecartClient` for Decart's service when there is an API key (``api_key``, else
    ``$DECART_API_KEY``); without one, a client of an :class:`~decart_sync.emulator.Emulator`
    started in this process on 127.0.0.1, which closing the client stops.

    ``base_url`` and ``realtime_base_url`` apply to the service (defaults as for
    ``DecartClient``). Nothing connects until the client is used. Use the client in a ``with``
    block, or pass this function as a factory (``SharedSession(client_factory=...)``).
    """
    key = api_key if api_key is not None else os.environ.get("DECART_API_KEY")
    if key and key.strip():
        return DecartClient(key, base_url=base_url, realtime_base_url=realtime_base_url)
    try:
        from decart_sync.emulator import Emulator
    except ImportError as exc:
        raise InvalidAPIKeyError(
            f"no API key, and the local emulator cannot run ({exc}): set DECART_API_KEY, or "
            "install the emulator with: pip install 'decart-sync[emulator]'"
        ) from exc
    return _EmulatorClient(Emulator().start())


class _EmulatorClient(DecartClient):
    """A DecartClient that owns the emulator it talks to: closing the client stops it."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(
            api_key=emulator.api_key,
            base_url=emulator.url,
            realtime_base_url=emulator.realtime_url,
        )
        self._emulator = emulator

    def close(self) -> None:
        super().close()
        self._emulator.stop()
