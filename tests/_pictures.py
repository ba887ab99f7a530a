"""The synthetic picture the LiveKit drivers publish, and how far a received frame is from it.

Plain numpy: the drivers run in our venv and in the official clients' side venvs alike (they
put this folder on ``sys.path``).
"""

from __future__ import annotations

import numpy as np


def pattern(width: int, height: int) -> np.ndarray:
    """An RGB picture with distinct colours and a luma ramp, so that effects show in pixels."""
    x = np.linspace(40, 215, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = x[None, :] * (0.4 + 0.6 * y)
    image[..., 1] = 200 - 120 * y
    image[..., 2] = 60
    image[: height // 2, : width // 3] = (200, 40, 40)
    image[height // 2 :, 2 * width // 3 :] = (40, 60, 200)
    return image.astype(np.uint8)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0-255) of two pictures of one size."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
