"""Fixtures for the example tests: the examples folder on sys.path, and a running emulator."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from _example_helpers import EXAMPLES

from decart_sync import DecartClient
from decart_sync.emulator import Emulator

# flask_app and the Django project are imported by the tests as a user's code would be.
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(EXAMPLES / "django_app"))


@pytest.fixture
def client(decart_emulator: Emulator) -> Iterator[DecartClient]:
    """A client bound to the test's emulator (the ``decart_emulator`` fixture of our plugin)."""
    with DecartClient(
        api_key=decart_emulator.api_key,
        base_url=decart_emulator.url,
        realtime_base_url=decart_emulator.realtime_url,
    ) as client:
        yield client
