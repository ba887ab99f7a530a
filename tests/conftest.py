"""Suite-wide settings: which tests are slow, and which transport the session tests use.

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--transport",
        choices=("auto", "livekit", "webrtc"),
        default="auto",
        help="the transport the session tests' clients use (livekit needs a private network "
        "namespace: tests/session/test_over_livekit.py runs them so)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    over_livekit = config.getoption("--transport") == "livekit"
    for item in items:
        if over_livekit and item.get_closest_marker("webrtc_only") is not None:
            item.add_marker(pytest.mark.skip(reason="about the webrtc transport's internals"))
        try:
            folder = Path(item.path).relative_to(_HERE).parts[0]
        except ValueError:
            continue
        if folder in _SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
