"""Value types, the model registry and the error tree: what a user sees when input is wrong."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

import decart_sync
from decart_sync import (
    DecartSDKError,
    InvalidInputError,
    ModelDefinition,
    ModelNotFoundError,
    ModelState,
    Prompt,
    SetInput,
    models,
)

FAST = ("fast",)


@pytest.mark.parametrize(
    ("name", "fps", "width", "height", "speeds"),
    [
        ("lucy-2.1", 30, 1280, 720, ()),
        ("lucy-2.5", 30, 1280, 720, FAST),
        ("lucy-2.6", 30, 1280, 720, FAST),
        ("lucy-latest", 30, 1280, 720, FAST),
        ("lucy-vton-3.5", 30, 1280, 720, FAST),
        ("lucy-vton-3.6", 30, 1280, 720, FAST),
        ("lucy-vton-latest", 30, 1280, 720, FAST),
        ("lucy-restyle-2", 30, 1280, 704, ()),
        ("lucy-restyle-latest", 30, 1280, 704, ()),
    ],
)
def test_registry_matches_protocol(
    name: str, fps: int, width: int, height: int, speeds: tuple[str, ...]
) -> None:
    model = models.realtime(name)
    assert (model.name, model.url_path, model.fps, model.width, model.height, model.speeds) == (
        name,
        "/v1/stream",
        fps,
        width,
        height,
        speeds,
    )


def test_the_registry_lists_exactly_the_current_models() -> None:
    assert len(models.realtime_model_names()) == 9


@pytest.mark.parametrize("retired", ["lucy-2", "lucy-2.1-vton", "mirage_v2"])
def test_retired_model_names_are_not_found(retired: str) -> None:
    with pytest.raises(ModelNotFoundError, match=retired):
        models.realtime(retired)


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelNotFoundError, match=r"lucy-2\.1") as info:
        models.realtime("lucy-9000")
    assert "lucy-9000" in info.value.message
    assert isinstance(info.value, DecartSDKError)


def test_custom_model_definition_by_hand() -> None:
    model = ModelDefinition("my-model", "/v1/stream", 24, 640, 352)
    assert model.fps == 24
    with pytest.raises(InvalidInputError, match="even"):
        ModelDefinition("m", "/v1/stream", 24, 641, 352)
    with pytest.raises(InvalidInputError, match="fps"):
        ModelDefinition("m", "/v1/stream", 0, 640, 352)
    with pytest.raises(InvalidInputError, match="url_path"):
        ModelDefinition("m", "v1/stream", 30, 640, 352)
    assert ModelDefinition("m", "/v1/stream", 30, 640, 352, ("fast",)).speeds == ("fast",)
    with pytest.raises(InvalidInputError, match="speeds"):
        ModelDefinition("m", "/v1/stream", 30, 640, 352, "fast")  # type: ignore[arg-type]


def test_registering_never_redefines_a_known_model() -> None:
    # Registering a new name is shown end to end in tests/emulator/test_cli.py (in a process of
    # its own, as registrations last for the process); these leave the registry as it was.
    known = models.realtime("lucy-2.1")
    assert models.register(known) is known  # the same definition again: a no-op
    with pytest.raises(InvalidInputError, match="already known"):
        models.register(attrs.evolve(known, width=640, height=352))
    assert models.realtime("lucy-2.1") == known
    with pytest.raises(InvalidInputError, match="ModelDefinition"):
        models.register("my-model")  # type: ignore[arg-type]
    assert len(models.realtime_model_names()) == 9


def test_prompt_validates_text() -> None:
    assert Prompt("anime").enhance is True
    for bad in ["", "   ", "\n"]:
        with pytest.raises(InvalidInputError, match="empty or blank"):
            Prompt(bad)
    with pytest.raises(InvalidInputError, match="must be a str"):
        Prompt(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="True or False"):
        Prompt("x", enhance="yes")  # type: ignore[arg-type]


def test_set_input_needs_prompt_or_image() -> None:
    with pytest.raises(InvalidInputError, match="needs a prompt or an image"):
        SetInput()
    with pytest.raises(InvalidInputError, match="empty or blank"):
        SetInput(prompt=" ")
    assert SetInput(prompt="anime").image is None
    assert SetInput(image=b"\x89PNG").prompt is None
    assert SetInput(image=Path("ref.jpg")).image == Path("ref.jpg")
    assert SetInput(image=np.zeros((4, 4, 3), np.uint8)).prompt is None
    with pytest.raises(InvalidInputError, match="numpy array"):
        SetInput(image=12345)
    with pytest.raises(InvalidInputError, match="empty bytes"):
        SetInput(image=b"")


def test_model_state_checks_types_and_hides_image_bytes() -> None:
    state = ModelState(prompt=Prompt("noir"), image=b"x" * 5000)
    assert "5000 bytes" in repr(state)
    assert "xxxx" not in repr(state)
    assert ModelState().prompt is None
    with pytest.raises(InvalidInputError, match="Prompt"):
        ModelState(prompt="noir")  # type: ignore[arg-type]


def test_error_tree_is_catchable_by_level() -> None:
    assert issubclass(decart_sync.InvalidInputError, ValueError)
    assert issubclass(decart_sync.DecartTimeoutError, TimeoutError)
    assert issubclass(decart_sync.ServerAtCapacityError, decart_sync.WebRTCError)
    assert issubclass(decart_sync.LoopThreadError, RuntimeError)
    for name in decart_sync.errors.__all__:
        assert issubclass(getattr(decart_sync, name), DecartSDKError)


def test_error_messages_are_redacted() -> None:
    err = decart_sync.WebRTCError("failed wss://x/v1/stream?api_key=sk-secret-value&model=m")
    assert "sk-secret-value" not in str(err)
    assert "model=m" in err.message
