"""``--model`` on a command line: a registered model's name, or a model profile written
``NAME:WIDTHxHEIGHT@FPS`` (``my-model:640x352@30``).

``decart-sync emulator --model my-model:640x352@30`` serves such a profile, and ``decart-sync
run --model my-model:640x352@30`` (or ``demo``) connects to it: the same text in both places,
read by the one parser here. A profile needs no registration, since it says everything a
session needs; its stream path is ``/v1/stream``, every realtime model's (protocol section 8),
which is where the emulator serves it. This module imports neither the client nor the emulator,
so both commands may use it.
"""

from __future__ import annotations

import argparse
import re

from decart_sync import models
from decart_sync.errors import InvalidInputError, ModelNotFoundError

__all__ = [
    "PROFILE_FORM",
    "STREAM_PATH",
    "model_profile",
    "model_spec",
    "parse_profile",
    "profile_text",
    "registered",
]

PROFILE_FORM = "NAME:WIDTHxHEIGHT@FPS"
STREAM_PATH = "/v1/stream"

_PROFILE = re.compile(r"^(?P<name>[^:\s]+):(?P<width>\d+)x(?P<height>\d+)@(?P<fps>\d+)$")
# The size a hint suggests: the registered models' own.
_EXAMPLE_SIZE = "1280x720@30"


def parse_profile(text: str) -> models.ModelDefinition:
    """``NAME:WIDTHxHEIGHT@FPS`` as a model served at :data:`STREAM_PATH`; raises
    :class:`InvalidInputError` saying what is wrong (the form, an odd side, a zero rate)."""
    match = _PROFILE.match(text.strip())
    if match is None:
        raise InvalidInputError(f"expected {PROFILE_FORM}, got {text!r}")
    return models.ModelDefinition(
        match["name"], STREAM_PATH, int(match["fps"]), int(match["width"]), int(match["height"])
    )


def profile_text(model: models.ModelDefinition) -> str:
    """``model`` written as :func:`parse_profile` reads it: what to type after ``--model``."""
    return f"{model.name}:{model.width}x{model.height}@{model.fps}"


def model_profile(text: str) -> models.ModelDefinition:
    """:func:`parse_profile` as an argparse ``type``: a bad profile is a usage error."""
    try:
        return parse_profile(text)
    except InvalidInputError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def model_spec(text: str) -> models.ModelDefinition:
    """A registered model's name, or a profile (any text with a ``:`` is read as one).

    Raises :class:`InvalidInputError` for a malformed profile and :class:`ModelNotFoundError`
    for an unknown name, each saying what to type instead: a command line cannot build a
    ``ModelDefinition``, so the SDK's own advice would not help there.
    """
    if ":" in text:
        try:
            return parse_profile(text)
        except InvalidInputError as error:
            raise InvalidInputError(
                f"--model {text}: {error.message} (e.g. --model my-model:640x352@30)"
            ) from None
    try:
        return models.realtime(text)
    except ModelNotFoundError:
        names = ", ".join(models.realtime_model_names())
        name = text.strip() or "my-model"
        raise ModelNotFoundError(
            f"unknown model {text!r}; --model takes one of: {names}; or, for a model of "
            f"another size (such as one `decart-sync emulator --model` serves), its profile "
            f"{PROFILE_FORM}: --model {name}:{_EXAMPLE_SIZE}"
        ) from None


def registered(model: models.ModelDefinition) -> bool:
    """Whether the registry holds ``model`` as it is (a profile may reuse a registered name at
    another size, and then a server must be told about it)."""
    try:
        return models.realtime(model.name) == model
    except ModelNotFoundError:
        return False
