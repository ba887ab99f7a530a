"""Helpers of the example tests: paths, running an example as a user would, MJPEG parts, and
telling a coloured picture from a grey one."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
from _support.processes import offline_env

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# One part of an MJPEG stream, as decart_sync.media.mjpeg writes it.
MJPEG_HEAD = re.compile(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n")


def run_example(
    script: str,
    args: Sequence[str],
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: pathlib.Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<script> <args>`` to its end, as the docstring tells users to."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else offline_env(),
        cwd=cwd,
        check=False,
    )


def jpeg_parts(data: bytes) -> list[bytes]:
    """The complete JPEGs at the start of a chunk of MJPEG stream, framed by their Content-Length.

    The length is the only framing there is: compressed JPEG data may hold any byte pair,
    ``\\r\\n`` included, so a part is never split on a delimiter.
    """
    jpegs = []
    position = 0
    while (head := MJPEG_HEAD.match(data, position)) is not None:
        start = head.end()
        end = start + int(head[1])
        if len(data) < end + 2:
            break  # the rest of this part has not arrived yet
        assert data[end : end + 2] == b"\r\n", "a part does not end where its Content-Length says"
        jpegs.append(data[start:end])
        position = end + 2
    return jpegs


def colour_variation(image: np.ndarray) -> float:
    """How much the colour changes across the picture: about 0 for a grey one, large for a
    colourful one. Measured around the picture's mean colour, so a uniform tint (a JPEG
    encoder's rounding leaves greys a level or two green) does not count as colour."""
    pixels = image.astype(np.int16)
    b, g, r = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red, blue = r - g, b - g
    return float(np.abs(red - red.mean()).mean() + np.abs(blue - blue.mean()).mean())


def solid_jpeg(bgr: tuple[int, int, int]) -> bytes:
    """A small one-colour JPEG, to upload as a reference image."""
    from decart_sync.media.snapshot import encode_jpeg

    image = np.empty((64, 64, 3), np.uint8)
    image[:] = bgr
    return encode_jpeg(image)
