"""A closed session gives its memory back at once: nothing it held waits for the cycle
collector, and the process-wide allocator bookkeeping follows sessions in and out."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest
from _support.sessions import SMALL_LUCY

from decart_sync import DecartClient, _allocator
from decart_sync.media import test_pattern
from decart_sync.testing import wait_until


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cycle_collector")
def test_a_closed_session_and_its_source_are_freed_without_the_cycle_collector(
    client: DecartClient,
) -> None:
    # The test pattern holds a whole backdrop frame; a user's source may hold a camera.
    source = test_pattern(width=SMALL_LUCY.width, height=SMALL_LUCY.height, fps=30)
    session = client.realtime.connect(SMALL_LUCY, source)
    assert session.read(timeout=10)[0]
    session.disconnect()
    source_ref, session_ref = weakref.ref(source), weakref.ref(session)
    del session, source
    # The loop thread may still be unwinding the connection's tasks for a moment.
    wait_until(lambda: session_ref() is None, 20, "the session to be freed")
    wait_until(lambda: source_ref() is None, 20, "the source to be freed")


def test_sessions_are_counted_in_and_out_for_the_allocator(client: DecartClient) -> None:
    before = _allocator.open_sessions()
    with client.realtime.connect(SMALL_LUCY, test_pattern(width=320, height=176)) as session:
        assert _allocator.open_sessions() == before + 1
        with client.realtime.subscribe(session.subscribe_token) as viewer:
            assert _allocator.open_sessions() == before + 2
            assert viewer.read(timeout=10)[0]
    assert _allocator.open_sessions() == before


def test_a_test_pattern_lets_go_of_its_backdrop_with_its_session_and_draws_again_after(
    client: DecartClient,
) -> None:
    layouts = sys.modules["decart_sync.media.test_pattern"]._layouts
    source = test_pattern(width=336, height=192, seed=7)  # a size no other test draws
    for _ in range(2):  # used again after its first session: it draws again
        with client.realtime.connect(SMALL_LUCY, source) as session:
            assert session.read(timeout=10)[0]
            assert (336, 192, 7) in layouts
        # The user still holds the source; its backdrop (a whole frame) is freed all the same.
        wait_until(lambda: (336, 192, 7) not in layouts, 20, "the backdrop to be freed")
