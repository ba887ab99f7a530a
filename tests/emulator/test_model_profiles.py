"""``decart-sync emulator --model NAME:WxH@FPS``: extra model profiles from the command line."""

from __future__ import annotations

import argparse

import pytest

from decart_sync.emulator.cli import add_arguments, model_profile
from decart_sync.models import ModelDefinition


def test_a_profile_becomes_a_model_definition() -> None:
    assert model_profile("bench:640x352@30") == ModelDefinition("bench", "/v1/stream", 30, 640, 352)


@pytest.mark.parametrize("text", ["bench", "bench:640x352", "bench:640x351@30", ":640x352@30"])
def test_a_bad_profile_is_a_usage_error(text: str) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--model", text])
    assert info.value.code == 2


def test_profiles_repeat() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "a:64x64@5", "--model", "b:128x64@10"])
    assert [m.name for m in args.extra_models] == ["a", "b"]
