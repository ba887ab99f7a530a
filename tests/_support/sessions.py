"""What the tests' sessions share: a small model profile, a quick reconnect policy, a client
bound to an emulator, and a user's thread pushing frames."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from decart_sync import DecartClient, ModelDefinition
from decart_sync.emulator import Emulator

# lucy-2.1 at a small input size (see pictures.WIDTH): the emulator still answers at the real
# model's size and rate.
SMALL_LUCY = ModelDefinition("lucy-2.1", "/v1/stream", 30, 320, 176)
FAST_RECONNECT = {"attempts": 5, "min_delay": 0.05, "max_delay": 0.2}


def client_of(emulator: Emulator, **overrides: Any) -> DecartClient:
    """A client of ``emulator``, with its key and both URLs unless ``overrides`` say otherwise
    (another key, a proxy's URL, a transport). The ``client`` fixture is one of these."""
    options: dict[str, Any] = {
        "api_key": emulator.api_key,
        "base_url": emulator.url,
        "realtime_base_url": emulator.realtime_url,
    }
    return DecartClient(**{**options, **overrides})


@contextlib.contextmanager
def pushing(session: Any, frame: np.ndarray, fps: float = 30) -> Iterator[threading.Thread]:
    """``session.send(frame)`` ``fps`` times a second from a thread of the test's (as a user's
    capture loop does) until the block ends."""
    stop = threading.Event()

    def push() -> None:
        while not stop.is_set():
            session.send(frame)
            stop.wait(1 / fps)

    thread = threading.Thread(target=push, name="test-pusher")
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(5)
