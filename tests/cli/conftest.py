"""The CLI tests' emulator is the suite's (tests/conftest.py), holding the CLI's own permanent
key, so that the tests can check the key never shows in what a command prints."""

from __future__ import annotations

from typing import Any

import pytest
from _cli_helpers import SECRET_KEY


@pytest.fixture
def emulator_options(emulator_options: dict[str, Any]) -> dict[str, Any]:
    return {**emulator_options, "api_keys": (SECRET_KEY,)}
