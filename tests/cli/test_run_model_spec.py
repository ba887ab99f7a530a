"""``--model NAME:WxH@FPS``: the profile ``decart-sync emulator --model`` serves is what
``decart-sync run`` and ``demo`` take, read by one parser; an unknown name says what to type."""

from __future__ import annotations

import pathlib

import pytest
from _cli_helpers import SECRET_KEY, assert_one_line_error, run_cli
from _support.decoding import video_frames

from decart_sync.commands import model_spec
from decart_sync.emulator import Emulator
from decart_sync.errors import InvalidInputError, ModelNotFoundError
from decart_sync.models import ModelDefinition

PROFILE = "cli-custom:320x192@15"


def test_a_profile_is_a_model_definition_at_the_emulators_stream_path() -> None:
    assert model_spec.model_spec(PROFILE) == ModelDefinition(
        "cli-custom", "/v1/stream", 15, 320, 192
    )
    assert model_spec.profile_text(model_spec.model_spec(PROFILE)) == PROFILE
    assert model_spec.model_spec("lucy-2.1").width == 1280  # a registered name is as registered


def test_the_emulator_and_run_read_profiles_with_one_parser() -> None:
    from decart_sync.emulator import cli as emulator_cli

    assert emulator_cli.model_profile is model_spec.model_profile


def test_an_unknown_name_says_what_to_type() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        model_spec.model_spec("my-model")
    assert "lucy-2.1" in caught.value.message
    assert "--model my-model:1280x720@30" in caught.value.message
    with pytest.raises(InvalidInputError, match="even"):
        model_spec.model_spec("my-model:640x351@30")


# Serving the custom profile, as ``decart-sync emulator --model`` does.
@pytest.mark.emulator(extra_models=[model_spec.parse_profile(PROFILE)])
def test_run_streams_through_a_custom_model_at_its_size(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    output = tmp_path / "custom.mp4"
    result = run_cli(
        [
            *("run", "--input", "synthetic", "--prompt", "sketch", "--seconds", "2"),
            *("--model", PROFILE, "--base-url", emulator.url, "--output", str(output)),
        ],
        env={"DECART_API_KEY": SECRET_KEY},
    )
    assert result.returncode == 0, result.stderr
    assert "through cli-custom at" in result.stdout
    frames = video_frames(output)
    assert frames, result.stdout
    # The emulator answered at the profile's size: the frames the session received, recorded.
    assert {frame.shape for _, frame in frames if frame is not None} == {(192, 320, 3)}


def test_run_with_an_unknown_model_names_the_profile_to_type(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        [
            *("run", "--input", "synthetic", "--prompt", "anime"),
            *("--model", "cli-custom", "--output", "x.mp4"),
        ],
        env={"DECART_API_KEY": SECRET_KEY},
        cwd=tmp_path,
    )
    assert_one_line_error(result, 2, "unknown model 'cli-custom'", "--model cli-custom:1280x720@30")


def test_run_with_a_malformed_profile_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        [
            *("run", "--input", "synthetic", "--prompt", "anime"),
            *("--model", "cli-custom:320x@15", "--output", "x.mp4"),
        ],
        env={"DECART_API_KEY": SECRET_KEY},
        cwd=tmp_path,
    )
    assert_one_line_error(result, 2, "--model cli-custom:320x@15", "NAME:WIDTHxHEIGHT@FPS")


def test_the_demo_serves_the_profile_it_is_given(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "demo.mp4"
    result = run_cli(
        ["demo", "--model", PROFILE, "--seconds", "1", "--output", str(output)], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert {frame.shape for _, frame in video_frames(output) if frame is not None} == {
        (192, 320, 3)
    }
