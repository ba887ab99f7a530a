"""``decart-sync run``: the demo's flow against a real service (here, an emulator on its own
port, as any --base-url would be)."""

from __future__ import annotations

import pathlib
import re

import pytest
from _cli_helpers import SECRET_KEY, assert_one_line_error, run_cli
from _support.decoding import video_frames

from decart_sync.commands.run import still_image_note
from decart_sync.emulator import Emulator
from decart_sync.media import render_test_pattern
from decart_sync.media.recorder import Recorder
from decart_sync.media.snapshot import save_frame


def test_synthetic_input_through_a_service(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    output = tmp_path / "run.mp4"
    result = run_cli(
        [
            *("run", "--input", "synthetic", "--prompt", "noir", "--seconds", "2"),
            *("--base-url", emulator.url, "--output", str(output)),
        ],
        env={"DECART_API_KEY": SECRET_KEY},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert emulator.realtime_url in out
    assert re.search(r'prompt +"noir"', out)
    assert re.search(r"latency +p50 \d+ ms, p95 \d+ ms", out)
    recorded = int(re.search(r"(\d+) recorded", out)[1])
    frames = video_frames(output, keep=lambda t: t > 1.5)
    assert len(frames) == recorded > 0
    # The stream stops once its 2 s are up (on a busy machine, noticed a little later), and the
    # recording holds exactly the frames the summary reports (the count above). Its clock and
    # the summary's start at different moments, so their times are not compared.
    elapsed = float(re.search(r"Streamed ([\d.]+) s", out)[1])
    assert elapsed >= 2.0
    assert frames[-1][0] > 1.5
    # Noir: grey only.
    last = frames[-1][1]
    assert last is not None
    pixels = last.astype(int)
    assert (pixels.max(axis=2) - pixels.min(axis=2)).mean() < 4
    assert SECRET_KEY not in out + result.stderr


def test_a_video_file_plays_to_its_end(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    clip = tmp_path / "clip.mp4"
    with Recorder(clip) as recorder:
        for n in range(30):  # one second
            recorder.write(render_test_pattern(n, 320, 176), at=n / 30)
    output = tmp_path / "out.mp4"
    result = run_cli(
        ["run", "--input", str(clip), "--prompt", "sepia", "--output", str(output)],
        env={"DECART_API_KEY": SECRET_KEY, "DECART_BASE_URL": emulator.url},
    )
    assert result.returncode == 0, result.stderr
    assert "(the input ended)" in result.stdout
    assert "latency   not measured" in result.stdout
    frames = video_frames(output, keep=lambda t: False)
    assert len(frames) >= 20 and frames[-1][0] < 3.0


def test_a_still_image_is_sent_as_one_frame_and_the_run_says_so(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    picture = tmp_path / "still.png"
    save_frame(render_test_pattern(0, 320, 176), picture)
    output = tmp_path / "out.mp4"
    result = run_cli(
        ["run", "--input", str(picture), "--prompt", "sketch", "--output", str(output)],
        env={"DECART_API_KEY": SECRET_KEY, "DECART_BASE_URL": emulator.url},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{picture} is a single picture, not a video: it is sent as one frame" in out
    assert "(the input ended)" in out
    sent, received, recorded = map(
        int, re.search(r"frames +(\d+) sent, (\d+) received, (\d+) recorded", out).groups()
    )
    assert recorded > 0
    # More frames back than sent: the summary says why, in the same line.
    repeats = "(the service sends at the model's 30 fps, repeating its last frame"
    assert (repeats in out) == (received > sent)


def test_a_video_is_streamed_without_the_still_image_note(tmp_path: pathlib.Path) -> None:
    clip = tmp_path / "clip.mp4"
    with Recorder(clip) as recorder:
        for n in range(2):
            recorder.write(render_test_pattern(n, 320, 176), at=n / 30)
    assert still_image_note(str(clip)) is None
    assert still_image_note("synthetic") is None


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ([], {}, ["no API key", "DECART_API_KEY"]),
        (["--model", "lucy-9"], {"DECART_API_KEY": "k" * 12}, ["--model takes one of", "lucy-2.6"]),
        (["--input", "missing.mp4"], {"DECART_API_KEY": "k" * 12}, ["not found", "missing.mp4"]),
        (["--input", "camera:"], {"DECART_API_KEY": "k" * 12}, ["camera:0"]),
        (["--no-prompt"], {"DECART_API_KEY": "k" * 12}, ["--prompt"]),
    ],
)
def test_bad_setups_are_one_line_usage_errors(
    args: list[str], env: dict[str, str], words: list[str], tmp_path: pathlib.Path
) -> None:
    command = ["run", "--input", "synthetic", "--prompt", "anime", "--output", "x.mp4"]
    if "--no-prompt" in args:
        command.remove("--prompt")
        command.remove("anime")
        args = []
    command += args  # later options win
    result = run_cli(command, env=env, cwd=tmp_path)
    assert_one_line_error(result, 2, "decart-sync run: error:", *words)
    assert not (tmp_path / "x.mp4").exists()


def test_a_rejected_key_is_reported_without_it(emulator: Emulator, tmp_path: pathlib.Path) -> None:
    wrong = "sk-wrong-key-for-this-service-42"
    result = run_cli(
        [
            *("run", "--input", "synthetic", "--prompt", "anime", "--seconds", "1"),
            *("--base-url", emulator.url, "--output", str(tmp_path / "x.mp4")),
        ],
        env={"DECART_API_KEY": wrong},
    )
    assert_one_line_error(result, 2, "API key")
    assert wrong not in result.stdout + result.stderr
