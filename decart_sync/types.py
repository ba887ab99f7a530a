"""Value types of the session state: :class:`Prompt`, :class:`ModelState` and :class:`SetInput`.

They validate at construction, so a mistake raises :class:`InvalidInputError` where it is made,
not later on the wire.
"""

from __future__ import annotations

import os
from typing import Any, Union

import attrs

from decart_sync.errors import InvalidInputError

__all__ = ["ImageInput", "ModelState", "Prompt", "SetInput"]

#: A reference image: raw bytes, a file path, an http(s) URL, a data URL, or a numpy HxWx3 BGR
#: uint8 array. Resolved to bytes when it is sent.
ImageInput = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", Any]


def _check_text(owner: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidInputError(f"{owner} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{owner} must not be empty or blank; pass the style to apply")


def _check_image(owner: str, value: object) -> None:
    if value is None or isinstance(value, (bytes, bytearray, memoryview, str, os.PathLike)):
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 0:
            raise InvalidInputError(f"{owner} is empty bytes; pass the image file's contents")
        if isinstance(value, str) and not value.strip():
            raise InvalidInputError(f"{owner} is an empty string; pass a path, URL or data URL")
        return
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        return
    raise InvalidInputError(
        f"{owner} must be bytes, a file path, an http(s) URL, a data URL or a numpy array, "
        f"got {type(value).__name__}"
    )


def _check_bool(owner: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{owner} must be True or False, got {value!r}")


def _image_repr(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if type(value).__name__ == "ndarray":
        return f"<array {getattr(value, 'shape', '?')}>"
    if isinstance(value, str) and value.startswith("data:"):
        return f"<data URL, {len(value)} chars>"
    return repr(value)


@attrs.frozen
class Prompt:
    """A text prompt. ``enhance`` lets the service expand a short prompt (recommended)."""

    text: str
    enhance: bool = True

    def __attrs_post_init__(self) -> None:
        _check_text("Prompt.text", self.text)
        _check_bool("Prompt.enhance", self.enhance)


@attrs.frozen
class ModelState:
    """The state a session starts with: a prompt, a reference image, both, or neither
    (passthrough)."""

    prompt: Prompt | None = None
    image: ImageInput | None = attrs.field(default=None, eq=False, repr=_image_repr)

    def __attrs_post_init__(self) -> None:
        if self.prompt is not None and not isinstance(self.prompt, Prompt):
            raise InvalidInputError(
                "ModelState.prompt must be a Prompt (e.g. Prompt(text='anime')), "
                f"got {type(self.prompt).__name__}"
            )
        _check_image("ModelState.image", self.image)


@attrs.frozen
class SetInput:
    """The whole new state for :meth:`set`: fields left out are cleared. At least one of
    ``prompt`` and ``image`` is required."""

    prompt: str | None = None
    enhance: bool = True
    image: ImageInput | None = attrs.field(default=None, eq=False, repr=_image_repr)

    def __attrs_post_init__(self) -> None:
        if self.prompt is None and self.image is None:
            raise InvalidInputError(
                "SetInput needs a prompt or an image (or both); to clear the state, "
                "disconnect or set a neutral prompt"
            )
        if self.prompt is not None:
            _check_text("SetInput.prompt", self.prompt)
        _check_bool("SetInput.enhance", self.enhance)
        _check_image("SetInput.image", self.image)
