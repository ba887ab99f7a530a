"""Reference images: turning what users pass (bytes, paths, URLs, data URLs, arrays) into bytes.

Resolution happens in the caller's thread before anything reaches the loop, so a bad image is an
:class:`InvalidInputError` from the very call that passed it, and a slow download never holds
the loop thread.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import requests

from decart_sync._redact import redact
from decart_sync.errors import InvalidInputError

#: Largest reference image the SDK will send (encoded bytes).
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_DOWNLOAD_TIMEOUT = 15.0


def _from_array(array: Any) -> bytes:
    """Encode an HxWx3 uint8 BGR array as PNG (lossless, so the palette is exact)."""
    import av
    import numpy as np

    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise InvalidInputError(
            "image array must be HxWx3 uint8 BGR with at least one pixel, "
            f"got shape {array.shape} dtype {array.dtype}"
        )
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="bgr24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    packets = codec.encode(frame.reformat(format="rgb24")) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


def _from_data_url(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise InvalidInputError("image data URL must look like 'data:image/png;base64,<data>'")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("image data URL has invalid base64 data") from None


def _download(url: str, timeout: float) -> bytes:
    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise InvalidInputError(
                    f"could not fetch image {redact(url)}: HTTP {response.status_code}"
                )
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise InvalidInputError(
                        f"image at {redact(url)} is larger than {MAX_IMAGE_BYTES} bytes"
                    )
            return bytes(data)
    except requests.RequestException as exc:
        raise InvalidInputError(
            f"could not fetch image {redact(url)}: {redact(str(exc))}"
        ) from None


def _read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise InvalidInputError(f"image file {path} is larger than {MAX_IMAGE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read image file {path}: {exc.strerror}") from None


def image_bytes(image: Any, *, timeout: float = _DOWNLOAD_TIMEOUT) -> bytes:
    """The encoded bytes of a reference image given in any accepted form."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, os.PathLike):
        data = _read_file(Path(image))
    elif isinstance(image, str):
        text = image.strip()
        if text.startswith("data:"):
            data = _from_data_url(text)
        elif text.lower().startswith(("http://", "https://")):
            data = _download(text, timeout)
        elif Path(text).is_file():
            data = _read_file(Path(text))
        else:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise InvalidInputError(
                f"image string {shown!r} is not an existing file path, an http(s) URL or a data "
                "URL (raw base64 is not accepted: pass bytes or a data URL)"
            )
    elif type(image).__name__ == "ndarray":
        data = _from_array(image)
    else:
        raise InvalidInputError(
            "image must be bytes, a file path, an http(s) URL, a data URL or a numpy array, "
            f"got {type(image).__name__}"
        )
    if not data:
        raise InvalidInputError("image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInputError(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    return data


def image_base64(image: Any, *, timeout: float = _DOWNLOAD_TIMEOUT) -> str:
    """The image as the base64 text the protocol's ``image_data`` carries."""
    return base64.b64encode(image_bytes(image, timeout=timeout)).decode("ascii")
