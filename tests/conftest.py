"""Suite-wide settings: which tests are slow.

``pytest -m "not slow"`` runs the fast core (the SDK, the emulator, media, sessions) in about a
minute; plain ``pytest`` runs everything. Whole folders whose tests start processes (the CLI,
the examples, the benchmarks, Decart's official clients) are slow as a rule; single slow tests
elsewhere carry ``@pytest.mark.slow`` themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_SLOW_FOLDERS = ("benchmarks", "cli", "examples", "official")
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(item.path).relative_to(_HERE).parts[0]
        except ValueError:
            continue
        if folder in _SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
