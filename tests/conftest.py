"""Suite-wide settings and fixtures: which tests are slow, which transport clients use, and the
one ``emulator`` and ``client`` every folder uses.

The folders mirror the package: ``foundation`` its top-level modules (client, tokens, the loop
thread, the protocol, workers), ``realtime`` and ``media`` their subpackages, ``emulator``,
``cli`` (``commands``), ``web``; then ``examples``, ``official`` (Decart's own clients),
``benchmarks`` and ``live``. Helpers several folders share live in ``_support``.

``pytest -m "not slow"`` runs the fast core (the SDK, the emulator, media, sessions) in about a
minute; plain ``pytest`` runs everything. Whole folders whose tests start processes (the CLI,
the examples, the benchmarks, Decart's official clients) are slow as a rule; single slow tests
elsewhere carry ``@pytest.mark.slow`` themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.sessions import client_of

from decart_sync import DecartClient
from decart_sync.emulator import Emulator

_SLOW_FOLDERS = ("benchmarks", "cli", "examples", "official")
_HERE = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--transport",
        choices=("auto", "livekit", "webrtc"),
        default="auto",
        help="the transport of the client fixture's clients (livekit needs a private network "
        "namespace: tests/realtime/test_over_livekit.py runs the session tests so)",
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


@pytest.fixture
def emulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """How the test's emulator is made: :class:`Emulator`'s keyword arguments, from the test's
    ``@pytest.mark.emulator(...)`` (none: the plugin's defaults). A folder whose tests all need
    one setting overrides this fixture, building on it (tests/cli: the CLI's own key)."""
    marker = request.node.get_closest_marker("emulator")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def emulator(
    emulator_options: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Emulator]:
    """A running emulator for this test, stopped after it. Unconfigured, it is our pytest
    plugin's ``decart_emulator`` (the one users get, so every such test checks the plugin too);
    configured, one made the same way with the options. Starting one takes milliseconds, so no
    folder shares one between tests: each test sees only its own sessions and faults."""
    if not emulator_options:
        yield request.getfixturevalue("decart_emulator")
        return
    with Emulator(host="127.0.0.1", port=0, **emulator_options) as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[DecartClient]:
    """A client of the test's emulator over the ``--transport`` of this run (``auto``: what a
    user gets)."""
    with client_of(emulator, transport=request.config.getoption("--transport")) as c:
        yield c
