"""Fixtures for the emulator's tests: a shared media loop and raw clients that always close.
The ``emulator`` they connect to is the suite's (tests/conftest.py): unconfigured, it is our
pytest plugin's ``decart_emulator``, so these tests check that fixture too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rawclient import MediaLoop, RawClient

from decart_sync.emulator import Emulator


@pytest.fixture(scope="session")
def media() -> Iterator[MediaLoop]:
    loop = MediaLoop()
    yield loop
    loop.close()


@pytest.fixture
def connect(emulator: Emulator, media: MediaLoop) -> Iterator[Callable[..., RawClient]]:
    """Open a producer WebSocket (``connect(api_key=..., model=..., origin=..., **query)``);
    every client opened is closed after the test."""
    clients: list[RawClient] = []

    def open_client(
        api_key: str | None = emulator.api_key,
        model: str | None = "lucy-2.1",
        origin: str | None = None,
        url: str | None = None,
        **query: Any,
    ) -> RawClient:
        target = url or RawClient.producer_url(emulator.realtime_url, api_key, model, **query)
        client = RawClient(target, media, origin=origin)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
