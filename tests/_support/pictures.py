"""The pictures the tests send, and how far a received picture is from one.

One synthetic picture serves everywhere: a luma ramp with a red block and a blue block, so that
effects, colour orders and scaling all show in pixels. Plain numpy: the LiveKit drivers import
this in our venv and in the official clients' side venvs alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Small by default: the client encodes what it sends, so a small input keeps the suite fast on
# two cores. The emulator still answers at the model's own size.
WIDTH, HEIGHT = 320, 176


def pattern(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The test picture in RGB order (what libwebrtc and the emulator's raw clients use)."""
    x = np.linspace(40, 215, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = x[None, :] * (0.4 + 0.6 * y)  # red grows left to right
    image[..., 1] = 200 - 120 * y  # green fades downwards
    image[..., 2] = 60
    image[: height // 2, : width // 3] = (200, 40, 40)  # a red block
    image[height // 2 :, 2 * width // 3 :] = (40, 60, 200)  # a blue block
    return image.astype(np.uint8)


def picture(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The test picture in BGR order, as a user's OpenCV frame would be."""
    return np.ascontiguousarray(pattern(width, height)[..., ::-1])


def still_frames(frame: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """An endless generator of one picture (a source the SDK must pace itself)."""
    frame = picture() if frame is None else frame
    while True:
        yield frame


def solid(level: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A BGR frame of one grey level; the level says which frame it is."""
    return np.full((height, width, 3), level, dtype=np.uint8)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0-255) of two pictures of one size."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
