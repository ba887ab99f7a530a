"""Every benchmark script still runs: each is started with ``--quick`` as a user would start it,
and must exit 0, end with its summary line and write its JSON figures.

Nothing about timings is checked: these are the benchmarks' smoke tests, not performance gates.
The scripts run at the same time (most of their time is spent waiting for frames paced in real
time), so the whole module takes about as long as the slowest script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from decart_sync.testing import require_netns

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# Generous: the scripts take seconds alone, but share two cores with each other here.
SCRIPT_TIMEOUT = 80.0


@dataclass(frozen=True)
class Script:
    name: str
    args: tuple[str, ...]
    summary: str  # how its last line starts
    keys: tuple[str, ...] = ()  # top-level JSON keys; empty: the script writes no JSON


COMMON_KEYS = ("machine", "settings", "summary")
SCRIPTS = (
    Script("e2e.py", ("--quick",), "e2e: ", (*COMMON_KEYS, "rows")),
    Script(
        "overhead.py",
        ("--quick",),
        "overhead: ",
        (*COMMON_KEYS, "raw", "sdk", "fps_ratio", "added_latency_ms", "goals"),
    ),
    Script("scale.py", ("--quick",), "scale: ", (*COMMON_KEYS, "rows", "growth", "goals")),
    Script(
        "slow_consumer.py",
        ("--quick",),
        "slow_consumer: ",
        (*COMMON_KEYS, "fast", "slow", "rss", "goals"),
    ),
    Script("memory.py", ("--quick",), "memory: ", (*COMMON_KEYS, "rows", "goals")),
    Script("effects.py", ("--quick",), "effects: ", ("cells", "worst")),
    # Micro-benchmarks without --quick/--json: a small frame count keeps them short.
    Script("frames_hub.py", ("--frames", "100"), "summary: "),
    Script("test_pattern.py", ("--frames", "20", "--size", "640x352"), "  to yuv420p frame:"),
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    figures: dict[str, object] | None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Start every script at once, then wait for all of them."""
    folder = tmp_path_factory.mktemp("benchmarks")
    started: dict[str, tuple[subprocess.Popen[str], Path | None]] = {}
    for script in SCRIPTS:
        json_path = folder / f"{script.name}.json" if script.keys else None
        command = [sys.executable, str(BENCHMARKS / script.name), *script.args]
        if json_path is not None:
            command += ["--json", str(json_path)]
        started[script.name] = (
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder
            ),
            json_path,
        )
    results: dict[str, Run] = {}
    try:
        for name, (process, json_path) in started.items():
            try:
                stdout, stderr = process.communicate(timeout=SCRIPT_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
                stderr += f"\n(killed after {SCRIPT_TIMEOUT:g} s)"
            figures = None
            if json_path is not None and json_path.exists():
                figures = json.loads(json_path.read_text(encoding="utf-8"))
            results[name] = Run(process.returncode, stdout, stderr, figures)
        yield results
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_quick_run_succeeds_and_reports(script: Script, runs: dict[str, Run]) -> None:
    run = runs[script.name]
    assert run.returncode == 0, f"{script.name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines, f"{script.name} printed nothing"
    assert lines[-1].startswith(script.summary), f"last line of {script.name}: {lines[-1]!r}"
    if script.keys:
        assert run.figures is not None, f"{script.name} wrote no JSON"
        missing = [key for key in script.keys if key not in run.figures]
        assert not missing, f"{script.name} JSON lacks {missing}"
        if "summary" in script.keys:
            assert run.figures["summary"] == lines[-1]


def test_a_side_without_samples_is_reported_not_a_crash(tmp_path: Path) -> None:
    """A window too short for any frame: the figures say so, and the script still ends well."""
    json_path = tmp_path / "overhead.json"
    process = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "overhead.py"),
            "--quick",
            "--duration",
            "0.000001",
            "--json",
            str(json_path),
        ],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "no samples" in process.stdout
    figures = json.loads(json_path.read_text(encoding="utf-8"))
    latency_goals = [g for g in figures["goals"] if g["goal"].startswith("added latency")]
    assert latency_goals and all(g["measured"] == "no samples" for g in latency_goals)
    assert not any(g["met"] for g in latency_goals)


def _run_alone(
    script: str, *args: str, folder: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a LiveKit benchmark with ``--quick`` (it moves into a private network namespace):
    it must exit 0 and write its JSON figures, which are returned with the process."""
    require_netns()
    json_path = folder / f"{script}.json"
    process = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args, "--json", str(json_path)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        cwd=folder,
    )
    assert process.returncode == 0, f"{process.stdout[-2000:]}\n{process.stderr[-3000:]}"
    figures: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return process, figures


def test_livekit_rows_run_in_a_private_namespace(tmp_path: Path) -> None:
    """``--livekit`` (e2e.py here; overhead.py and scale.py share its re-run): the script moves
    into a private network namespace and measures the SDK and the raw livekit client over the
    LiveKit transport, with issue 12's goals. Alone, after the others: libwebrtc is busy."""
    process, figures = _run_alone("e2e.py", "--livekit", folder=tmp_path)
    clients = {row["client"] for row in figures["rows"]}
    assert {"sdk livekit", "raw livekit"} <= clients, clients
    assert all(row["new_fps"] > 0 for row in figures["rows"] if "livekit" in row["client"])
    assert [g["goal"].split(" ", 1)[1] for g in figures["goals"]] == [
        "livekit fps delivered",
        "livekit p50 vs raw livekit",
        "livekit CPU per frame vs raw livekit",
    ]
    assert process.stdout.rstrip().splitlines()[-1] == figures["summary"]


def test_livekit_rooms_measures_what_the_package_keeps_per_room(tmp_path: Path) -> None:
    """``livekit_rooms.py``: plain ``livekit`` rooms joined and left, in each signalling mode,
    with a fitted figure per mode. Alone: libwebrtc is busy."""
    process, figures = _run_alone("livekit_rooms.py", folder=tmp_path)
    rows = figures["rows"]
    assert [row["mode"] for row in rows] == ["join v1", "join v0", "session v1"]
    for row in rows:
        assert len(row["after"]) == figures["settings"]["cycles"]
        assert isinstance(row["kept_kb_per_room_heap"], float)
    assert process.stdout.rstrip().splitlines()[-1] == figures["summary"]
