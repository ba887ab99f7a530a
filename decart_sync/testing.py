"""pytest plugin (entry point ``pytest11``): the ``decart_emulator`` fixture, and
:func:`wait_until` for tests that must wait for something a session does on its own threads.

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

import time
from collections.abc import Callable, Iterator
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


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "", poll: float = 0.005
) -> None:
    """Return once ``predicate()`` is true; raise AssertionError naming ``what`` after
    ``timeout`` seconds. A session works on its own threads: a test waits for the state it
    expects, with a deadline, rather than sleeping for a time that is too short when the machine
    is busy and wasted when it is not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(poll)
