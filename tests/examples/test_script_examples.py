"""The command-line examples, each run as its docstring says (``python examples/...``), with a
short ``--seconds``: each must end by itself, exit 0 and print its summary."""

from __future__ import annotations

import pathlib
import re
import shutil
import textwrap
from collections.abc import Iterator

import pytest
from _example_helpers import run_example
from _support.decoding import decode_image
from _support.processes import offline_env

from decart_sync import DecartClient
from decart_sync.emulator import Emulator
from decart_sync.media import test_pattern
from decart_sync.realtime import RealtimeClient


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match[1])


def test_robot_loop_ticks_at_a_fixed_rate_and_reports_frame_age() -> None:
    result = run_example("robot_loop.py", ["--seconds", "1.5", "--hz", "10"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    ticks = number(r"ticks: (\d+) in", out)
    assert ticks == 15  # 1.5 s at 10 Hz: the count is fixed, whatever the frame rate
    tick_lines = re.findall(r"^tick +\d+ +frame #(\d+) +age +([\d.]+) ms", out, re.M)
    assert len(tick_lines) == ticks
    seqs = [int(seq) for seq, _ in tick_lines]
    assert seqs == sorted(seqs) and seqs[-1] > seqs[0]  # it acted on newer and newer frames
    # 10 Hz against a 30 fps stream: most ticks find a frame newer than the last one.
    assert number(r"frames: (\d+) fresh", out) >= ticks / 2
    max_age = number(r"max ([\d.]+) ms", out)
    assert max_age == max(float(age) for _, age in tick_lines)
    assert max_age < 1000  # the newest frame, not a backlog


def test_opencv_loop_writes_frames_to_a_temporary_folder_when_there_is_no_display(
    tmp_path: pathlib.Path,
) -> None:
    env = offline_env()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    # Run from a folder of the user's, with no --out: nothing may land in it.
    result = run_example("opencv_loop.py", ["--seconds", "2"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    frames = number(r"frames: (\d+) in", result.stdout)
    written = number(r"(\d+) written to", result.stdout)
    out = pathlib.Path(re.search(r"written to (.+)/$", result.stdout, re.MULTILINE)[1])
    try:
        assert frames >= 10
        files = sorted(out.glob("frame_*.jpg"))
        assert 1 <= len(files) == written  # one a second
        assert decode_image(files[0].read_bytes()).shape == (720, 1280, 3)
    finally:
        shutil.rmtree(out)


@pytest.fixture
def fake_opencv(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A stand-in ``cv2`` module that counts the frames shown, for a run with a "display"."""
    folder = tmp_path / "fake_cv2"
    folder.mkdir()
    (folder / "cv2.py").write_text(
        textwrap.dedent(
            """
            import os
            shown = []

            def imshow(name, frame):
                assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype.name == "uint8"
                shown.append(frame.shape)

            def waitKey(delay):
                return -1

            def destroyAllWindows():
                with open(os.environ["FAKE_CV2_REPORT"], "w") as report:
                    report.write(str(len(shown)))
            """
        )
    )
    yield folder


def test_opencv_loop_shows_a_window_when_opencv_and_a_display_exist(
    tmp_path: pathlib.Path, fake_opencv: pathlib.Path
) -> None:
    report = tmp_path / "shown.txt"
    env = offline_env(PYTHONPATH=str(fake_opencv), DISPLAY=":0", FAKE_CV2_REPORT=str(report))
    out = tmp_path / "frames"
    result = run_example("opencv_loop.py", ["--seconds", "1.5", "--out", str(out)], env=env)
    assert result.returncode == 0, result.stderr
    assert "shown in a window" in result.stdout
    frames = number(r"frames: (\d+) in", result.stdout)
    assert frames >= 10 and int(report.read_text()) == frames
    assert not out.exists()  # nothing written when frames are shown


def test_subscribe_viewer_watches_a_producer_it_starts() -> None:
    result = run_example("subscribe_viewer.py", ["--seconds", "2"])
    assert result.returncode == 0, result.stderr
    assert re.search(r"producer: session \w+, prompt 'neon'", result.stdout)
    assert "viewer: first frame, 1280x720" in result.stdout
    assert number(r"viewer received (\d+) frames", result.stdout) >= 10


def test_subscribe_viewer_watches_a_session_by_its_token(
    client: DecartClient, emulator: Emulator
) -> None:
    producer: RealtimeClient = client.realtime.connect(
        "lucy-2.1", test_pattern(), prompt="sepia", timeout=30
    )
    with producer:
        assert producer.subscribe_token
        env = offline_env(
            DECART_API_KEY=emulator.api_key,
            DECART_BASE_URL=emulator.url,
            DECART_REALTIME_BASE_URL=emulator.realtime_url,
        )
        result = run_example(
            "subscribe_viewer.py", ["--seconds", "2", "--token", producer.subscribe_token], env=env
        )
        assert result.returncode == 0, result.stderr
        assert "producer:" not in result.stdout  # it started none of its own
        assert number(r"viewer received (\d+) frames", result.stdout) >= 10
        (session,) = emulator.sessions()  # still the one producer, still running
        assert session.state == "generating"


def test_seed_quickstart_runs_the_docs_code_to_the_end() -> None:
    result = run_example("seed_quickstart.py", ["--seconds", "2"])
    assert result.returncode == 0, result.stderr
    total = number(r"(\d+) transformed frames received", result.stdout)
    before = number(r"before set\(\): (\d+) frames", result.stdout)
    after = number(r"after set\(\): (\d+) frames", result.stdout)
    assert before >= 5 and after >= 5 and before + after == total
