"""Fixtures for the CLI tests: an emulator in this process for commands to talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _cli_helpers import SECRET_KEY

from decart_sync.emulator import Emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(api_keys=(SECRET_KEY,)) as emu:
        yield emu
