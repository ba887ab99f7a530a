"""pytest plugin (entry point ``pytest11``): the ``decart_emulator`` fixture.

Test your own app against a local emulator, with no API key and no credits::

    def test_my_app(decart_emulator):
        client = DecartClient(
            api_key=decart_emulator.api_key,
            base_url=decart_emulator.url,
            realtime_base_url=decart_emulator.realtime_url,
        )
        ...

Every pytest run of anyone who installed decart-sync loads this module, possibly without the
emulator's dependencies (aiohttp, aiortc), so the emulator is imported only inside the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from decart_sync.emulator import Emulator


@pytest.fixture
def decart_emulator() -> Iterator[Emulator]:
    """A running :class:`~decart_sync.emulator.Emulator` on 127.0.0.1 and a free port,
    stopped after the test. Fault methods (``drop_websocket``, ``delay_acks``, ...) act on it."""
    try:
        from decart_sync.emulator import Emulator
    except ImportError as exc:
        raise RuntimeError(
            f"the decart_emulator fixture needs the emulator extra ({exc}); "
            "install it with: pip install 'decart-sync[emulator]'"
        ) from exc

    emulator = Emulator(host="127.0.0.1", port=0).start()
    try:
        yield emulator
    finally:
        emulator.stop()
