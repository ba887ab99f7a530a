"""What a test does when something it needs is missing from the machine: skip, unless the
machine promised to have it (CI sets ``DECART_REQUIRE_BROWSER=1`` and
``DECART_REQUIRE_OFFICIAL_CLIENTS=1``), and then fail, since a skip there is no pass."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str, required_by: str) -> NoReturn:
    """Skip with ``reason``; fail instead when the environment variable ``required_by`` is 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {reason}")
    pytest.skip(reason)
