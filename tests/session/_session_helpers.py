"""Shared helpers of the session tests: a small model profile, waiting, input pictures."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from decart_sync import ModelDefinition
from decart_sync.testing import wait_until as wait_until  # re-exported for the tests here

# Tests send small frames: the client encodes what it sends, so a small input keeps the suite
# fast on two cores. The emulator still answers at the real model's size and rate.
SMALL_LUCY = ModelDefinition("lucy-2.1", "/v1/stream", 30, 320, 176)
FAST_RECONNECT = {"attempts": 5, "min_delay": 0.05, "max_delay": 0.2}


def picture(width: int = 320, height: int = 176) -> np.ndarray:
    """A BGR picture with a luma ramp and coloured blocks, so effects show in pixels."""
    x = np.linspace(30, 220, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.float32)
    image[..., 2] = x * (0.5 + 0.5 * y)
    image[..., 1] = 190 - 110 * y
    image[..., 0] = 70
    image[: height // 2, : width // 3] = (40, 40, 200)
    image[height // 2 :, 2 * width // 3 :] = (200, 60, 40)
    return image.astype(np.uint8)


def still_frames(frame: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """An endless generator of one picture (a source the SDK must pace itself)."""
    frame = picture() if frame is None else frame
    while True:
        yield frame
