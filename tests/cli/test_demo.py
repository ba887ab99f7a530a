"""``decart-sync demo``, run the way a newcomer runs it: the installed command, in a shell."""

from __future__ import annotations

import pathlib
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from _cli_helpers import assert_one_line_error, console_script, run_cli
from _support.decoding import video_frames
from _support.processes import offline_env

SECONDS = 4.0


HALF = SECONDS / 2
# Where each style must show: clear of the start, the switch (plus latency) and the end.
SKETCH_SPAN = (0.3, HALF - 0.4)
NEON_SPAN = (HALF + 0.6, SECONDS - 0.2)


def in_a_span(t: float) -> bool:
    return any(start <= t <= end for start, end in (SKETCH_SPAN, NEON_SPAN))


def style_stats(
    frames: list[tuple[float, np.ndarray | None]], span: tuple[float, float]
) -> np.ndarray:
    """Mean brightness and mean colourfulness of the frames shown within ``span``."""
    start, end = span
    # Every fourth pixel each way is plenty for an average, and 16 times cheaper.
    chosen = [
        p[::4, ::4].astype(np.float32) for t, p in frames if start <= t <= end and p is not None
    ]
    assert len(chosen) >= 10, f"only {len(chosen)} frames between {start} and {end} s"
    brightness = np.mean([p.mean() for p in chosen])
    colourfulness = np.mean([(p.max(axis=2) - p.min(axis=2)).mean() for p in chosen])
    return np.array([brightness, colourfulness])


def test_demo_records_both_styles_and_reports(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "demo.mp4"
    started = time.monotonic()
    result = run_cli(["demo", "--seconds", str(SECONDS), "--output", str(output)])
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout

    # The summary, with real numbers in it.
    sent, received, recorded = map(
        int, re.search(r"frames +(\d+) sent, (\d+) received, (\d+) recorded", out).groups()
    )
    # Rates and latencies depend on how busy the machine is (benchmarks/ measures them): here,
    # only what holds at any load. The service never sends faster than the model's 30 fps.
    assert sent > 0 and received >= recorded > 0
    fps = float(re.search(r"rate +([\d.]+) fps out", out)[1])
    assert 0 < fps <= 31
    p50, p95 = map(int, re.search(r"latency +p50 (\d+) ms, p95 (\d+) ms", out).groups())
    assert 0 < p50 <= p95
    assert re.search(r'prompts +"sketch" for [\d.]+ s, then "neon"', out)
    assert re.search(r"dropped +\d+ input frames? skipped by the model, \d+ output frame", out)
    assert str(output) in out
    # Progress went out as plain lines (stdout is not a terminal here): no carriage returns.
    assert "\r" not in out and re.search(r"out +\d+ +[\d.]+ fps", out)

    # A playable MP4 as long as the demo, whose halves show the two styles.
    frames = video_frames(output, keep=in_a_span)
    assert len(frames) == recorded
    # As long as the demo: it records SECONDS of stream, and no frame after the demo ended.
    assert SECONDS - 0.5 <= frames[-1][0] <= wall
    assert next(p for _, p in frames if p is not None).shape == (720, 1280, 3)
    sketch = style_stats(frames, SKETCH_SPAN)
    neon = style_stats(frames, NEON_SPAN)
    # Pencil on white paper is bright and grey; neon is a dark scene with coloured glows.
    assert sketch[0] - neon[0] > 60, (sketch, neon)
    assert neon[1] - sketch[1] > 15, (sketch, neon)


def test_ctrl_c_stops_cleanly_with_a_valid_recording(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "interrupted.mp4"
    process = subprocess.Popen(
        [console_script(), "demo", "--seconds", "60", "--output", str(output)],
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    progressed = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if " fps " in line:
                progressed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert progressed.wait(30), "".join(lines)  # a progress line: frames are flowing
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 130
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(5)
    stderr = process.stderr.read() if process.stderr else ""
    out = "".join(lines)
    assert "Traceback" not in stderr + out
    assert "(interrupted)" in out
    recorded = int(re.search(r"(\d+) recorded", out)[1])
    frames = video_frames(output, keep=lambda t: False)
    assert recorded >= 30 and len(frames) == recorded


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--size", "640by352"], ["--size", "640x352"]),
        (["--size", "641x352"], ["even"]),
        (["--size", "16x16"], ["out of range"]),
        (["--seconds", "-1"], ["--seconds"]),
        (["--model", "no-such-model"], ["unknown model", "--model takes one of", "lucy-2.1"]),
        (["--prompt", " "], ["--prompt"]),
        (["--output", "/no/such/dir/demo.mp4"], ["cannot write", "/no/such/dir"]),
    ],
)
def test_bad_options_are_one_line_usage_errors(args: list[str], words: list[str]) -> None:
    assert_one_line_error(run_cli(["demo", *args]), 2, "decart-sync demo: error:", *words)
