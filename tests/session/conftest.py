"""Fixtures for session tests: a real emulator in-process and a client bound to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from decart_sync import DecartClient
from decart_sync.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[DecartClient]:
    with DecartClient(
        api_key=emulator.api_key,
        base_url=emulator.url,
        realtime_base_url=emulator.realtime_url,
        transport=request.config.getoption("--transport"),
    ) as c:
        yield c
