"""What the benchmark scripts share: the machine description, percentiles, the table, the JSON
file, and CPU, memory and thread accounting for a process and its threads.

Every script prints a table, optionally writes its figures with ``--json PATH`` and ends with one
summary line; they all go through the helpers here so the output looks the same everywhere.
Nothing here asserts anything about timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

# The latency percentiles every script reports.
PERCENTILES = (50, 95, 99)


# ---------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where the figures were taken: CPU, cores, load, and the versions that matter."""
    import aiortc
    import av
    import numpy

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "loadavg": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "pyav": av.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    load = " ".join(f"{value:.2f}" for value in info["loadavg"])
    return (
        f"{info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), load {load}; "
        f"Python {info['python']}, aiortc {info['aiortc']}, PyAV {info['pyav']}"
    )


# ---------------------------------------------------------------- arguments and output


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options every script takes: ``--quick`` and ``--json PATH``."""
    first_line = description.strip().splitlines()[0] if description else None
    result = argparse.ArgumentParser(description=first_line)
    result.add_argument("--quick", action="store_true", help="run for a few seconds (for CI)")
    result.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    return result


# Set in the copy of a script that runs inside the private network namespace.
_IN_NETNS = "DECART_SYNC_BENCH_IN_NETNS"


def add_livekit_flag(arguments: argparse.ArgumentParser) -> None:
    """``--livekit``, the one flag of e2e, overhead and scale for rows over the LiveKit
    transport."""
    arguments.add_argument(
        "--livekit",
        action="store_true",
        help="add rows over the LiveKit transport (re-runs in a private network namespace)",
    )


def rerun_for_livekit(livekit: bool, script: str, argv: Sequence[str] | None) -> int | None:
    """With ``--livekit``, run ``script`` again in a private network namespace and return its
    exit status; None when there is nothing to do (no ``--livekit``, or already inside).

    libwebrtc (inside ``livekit``) never uses loopback interfaces: in the namespace its clients
    gather on 127.0.0.2 and reach the emulator on 127.0.0.1 (``decart_sync.testing``; needs
    root), and nothing can leave it. The whole script moves there, so both transports are
    measured in one run, side by side."""
    if not livekit or os.environ.get(_IN_NETNS):
        return None
    from decart_sync.testing import netns_command, netns_unavailable_reason

    reason = netns_unavailable_reason()
    if reason is not None:
        name = Path(script).stem
        print(f"{name}: --livekit needs a private network namespace: {reason}", file=sys.stderr)
        return 2
    command = netns_command([sys.executable, script, *(sys.argv[1:] if argv is None else argv)])
    return subprocess.run(command, env={**os.environ, _IN_NETNS: "1"}, check=False).returncode


def ms_summary(seconds: Iterable[float]) -> dict[str, float | int | None]:
    """Count, mean and percentiles of durations given in seconds, in milliseconds."""
    values = sorted(value * 1000.0 for value in seconds)
    result: dict[str, float | int | None] = {"n": len(values)}
    if not values:
        result.update({"mean": None, **{f"p{p}": None for p in PERCENTILES}})
        return result
    result["mean"] = round(statistics.fmean(values), 3)
    for p in PERCENTILES:
        result[f"p{p}"] = round(_percentile(values, p), 3)
    return result


def _percentile(ordered: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt(value: float | int | None, digits: int = 1) -> str:
    """A figure for a table cell; '-' when there is none."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [
        max(len(column), *(len(row[index]) for row in rows)) if rows else len(column)
        for index, column in enumerate(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    if title:
        print(title)
    print(line(columns))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
    print()


def write_json(path: Path | None, figures: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")


NO_SAMPLES = "no samples"


def goal(
    name: str, value: float | None, passes: Callable[[float], bool], shown: str, target: str
) -> dict[str, Any]:
    """One goal of the issue, as every script reports it (in the JSON and the table).

    ``shown`` is a format string for ``value`` (``"{:.1f} MB"``). A figure that could not be
    measured (None or NaN: one side collected no samples) is reported as such, and missed."""
    if value is None or math.isnan(value):
        return {"goal": name, "met": False, "measured": NO_SAMPLES, "target": target}
    return {"goal": name, "met": passes(value), "measured": shown.format(value), "target": target}


def difference(a: float | int | None, b: float | int | None, digits: int = 3) -> float | None:
    """``a - b``, or None when either figure is missing."""
    return None if a is None or b is None else round(a - b, digits)


def signed(value: float | None, digits: int = 2) -> str:
    """A difference for a table or a summary line; the no-samples word when there is none."""
    return NO_SAMPLES if value is None else f"{value:+.{digits}f}"


def cpu_ms_per_frame(cpu_per_s: float, fps: float) -> float | None:
    """CPU milliseconds a process spent per frame its user got; None with no frames."""
    return round(cpu_per_s * 1000.0 / fps, 3) if fps > 0 else None


def cpu_per_frame_goal(name: str, sdk_ms: float | None, raw_ms: float | None) -> dict[str, Any]:
    """Issue 12: the SDK's CPU per frame is no more than the hand-written client's (the whole
    process each: source conversion, encoding, decoding, the BGR conversion)."""
    ratio = None if sdk_ms is None or not raw_ms else sdk_ms / raw_ms
    result = goal(name, ratio, lambda r: r <= 1.0, "{:.0%} of raw", "<= 100 % of raw")
    if ratio is not None:
        result["measured"] = f"{sdk_ms:.2f} vs {raw_ms:.2f} ms ({ratio:.0%})"
    return result


def print_goals(goals: Sequence[dict[str, Any]]) -> None:
    rows = [
        [item["goal"], item["measured"], item["target"], "met" if item["met"] else "MISSED"]
        for item in goals
    ]
    print_table(["goal", "measured", "target", ""], rows)


# ---------------------------------------------------------------- processes


class ProcessMeter:
    """CPU time, RSS and threads of one process (this one or another), between two moments.

    Peak RSS comes from the kernel's high-water mark (``VmHWM``), which :meth:`start` resets
    through ``/proc/PID/clear_refs`` where the kernel allows it, so each measurement window gets
    its own peak. Where it cannot be reset, RSS sampled by :meth:`poll` stands in for it.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.process = psutil.Process(pid if pid is not None else os.getpid())
        self._started_at = 0.0
        self._cpu_at_start = 0.0
        self._peak_sampled = 0
        self._hwm_reset = False

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def threads(self) -> int:
        return int(self.process.num_threads())

    def start(self, reset_peak: bool = True) -> None:
        """Start the CPU clock and, unless told not to, the peak RSS."""
        if reset_peak:
            self.reset_peak()
        self._started_at = time.monotonic()
        self._cpu_at_start = self.cpu_seconds()

    def reset_peak(self) -> None:
        self._hwm_reset = self._reset_high_water_mark()
        self._peak_sampled = self.rss()

    def poll(self) -> None:
        """Sample RSS (only needed where the high-water mark cannot be reset)."""
        self._peak_sampled = max(self._peak_sampled, self.rss())

    def cpu_per_second(self) -> float:
        """CPU seconds used per wall second since :meth:`start` (1.0 = one core busy)."""
        elapsed = time.monotonic() - self._started_at
        return (self.cpu_seconds() - self._cpu_at_start) / elapsed if elapsed > 0 else 0.0

    def peak_rss(self) -> int:
        if self._hwm_reset:
            hwm = self._high_water_mark()
            if hwm is not None:
                return hwm
        self.poll()
        return self._peak_sampled

    def _reset_high_water_mark(self) -> bool:
        try:
            with open(f"/proc/{self.process.pid}/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
        except OSError:
            return False
        return self._high_water_mark() is not None

    def _high_water_mark(self) -> int | None:
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


MB = 1024 * 1024

# Trailing numbers of pool and per-session thread names ("decart-media_3", "decart-loop-1",
# "decart-signaling-session-12") are dropped, so threads doing the same job add up.
_THREAD_NUMBER = re.compile(r"([-_]\d+)+$")
NATIVE = "native (codec, BLAS)"


def thread_role(name: str) -> str:
    return _THREAD_NUMBER.sub("", name)


def thread_cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds of every thread of this process, by native thread id, with its role.

    Threads Python did not start (libvpx and x264 worker threads) have no Python name and are
    grouped as :data:`NATIVE`.
    """
    names = {
        thread.native_id: thread_role(thread.name)
        for thread in threading.enumerate()
        if thread.native_id is not None
    }
    return {
        thread.id: (names.get(thread.id, NATIVE), float(thread.user_time + thread.system_time))
        for thread in psutil.Process().threads()
    }


def thread_roles_count() -> dict[str, int]:
    """How many threads of each role this process has now, most first."""
    names = {t.native_id: thread_role(t.name) for t in threading.enumerate()}
    counts: dict[str, int] = {}
    for thread in psutil.Process().threads():
        role = names.get(thread.id, NATIVE)
        counts[role] = counts.get(role, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def thread_cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float
) -> dict[str, float]:
    """CPU seconds per second of each thread role between two snapshots, busiest first.

    Threads that ended in between are missing from ``after`` and are not counted; threads
    started in between count from zero.
    """
    roles: dict[str, float] = {}
    for tid, (role, cpu) in after.items():
        previous = before.get(tid)
        used = cpu - (previous[1] if previous is not None and previous[0] == role else 0.0)
        roles[role] = roles.get(role, 0.0) + used
    if seconds <= 0:
        return {}
    return {
        role: round(used / seconds, 3)
        for role, used in sorted(roles.items(), key=lambda item: -item[1])
        if used / seconds >= 0.0005
    }


def snapshot_json(snapshot: dict[int, tuple[str, float]]) -> dict[str, list[Any]]:
    """A snapshot in a form that survives JSON (keys become strings)."""
    return {str(tid): [role, cpu] for tid, (role, cpu) in snapshot.items()}


def snapshot_from_json(data: dict[str, list[Any]]) -> dict[int, tuple[str, float]]:
    return {int(tid): (str(role), float(cpu)) for tid, (role, cpu) in data.items()}


def format_roles(roles: dict[str, float], limit: int = 4) -> str:
    """The busiest thread roles as 'role 0.42, role 0.10' (CPU seconds per second)."""
    return ", ".join(f"{role} {used:.2f}" for role, used in list(roles.items())[:limit])


Snapshot = dict[int, tuple[str, float]]


class Window:
    """CPU per second, peak and final RSS, thread count and busiest threads of one or more
    processes (the SDK's, the emulator's) over one measurement window.

    Each process is given as a :class:`ProcessMeter` and a function returning its per-thread
    snapshot (:func:`thread_cpu_snapshot` for this process, ``EmulatorProcess.thread_cpu`` for
    the emulator).
    """

    def __init__(self, processes: dict[str, tuple[ProcessMeter, Callable[[], Snapshot]]]) -> None:
        self._processes = processes
        self._before: dict[str, Snapshot] = {}
        self._rss_at_mark: dict[str, int] = {}
        self._started_at = 0.0
        self.seconds = 0.0

    def mark(self) -> None:
        """Note each process's RSS and start its peak now (before a session opens, say), so
        the peak covers more than the window; the CPU window still starts at :meth:`start`."""
        for label, (meter, _) in self._processes.items():
            meter.reset_peak()
            self._rss_at_mark[label] = meter.rss()

    def start(self) -> None:
        for label, (meter, snapshot) in self._processes.items():
            marked = label in self._rss_at_mark
            meter.start(reset_peak=not marked)
            if not marked:
                self._rss_at_mark[label] = meter.rss()
            self._before[label] = snapshot()
        self._started_at = time.monotonic()

    def poll(self) -> None:
        for meter, _ in self._processes.values():
            meter.poll()

    def stop(self) -> dict[str, dict[str, Any]]:
        self.seconds = time.monotonic() - self._started_at
        figures: dict[str, dict[str, Any]] = {}
        for label, (meter, snapshot) in self._processes.items():
            figures[label] = {
                "cpu_per_s": round(meter.cpu_per_second(), 3),
                "start_rss_mb": round(self._rss_at_mark[label] / MB, 1),
                "peak_rss_mb": round(meter.peak_rss() / MB, 1),
                "rss_mb": round(meter.rss() / MB, 1),
                "threads": meter.threads(),
                "thread_roles": thread_cpu_delta(self._before[label], snapshot(), self.seconds),
            }
        return figures


def combine_windows(windows: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Several windows of equal length (one per session) as one: mean CPU and per-role CPU,
    the highest peak RSS and thread count, the last RSS."""
    combined: dict[str, dict[str, Any]] = {}
    for label in windows[0]:
        parts = [window[label] for window in windows]
        roles: dict[str, float] = {}
        for part in parts:
            for role, used in part["thread_roles"].items():
                roles[role] = roles.get(role, 0.0) + used / len(parts)
        combined[label] = {
            "cpu_per_s": round(statistics.fmean(p["cpu_per_s"] for p in parts), 3),
            "start_rss_mb": parts[0]["start_rss_mb"],
            "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
            "rss_mb": parts[-1]["rss_mb"],
            "threads": max(p["threads"] for p in parts),
            "thread_roles": {
                role: round(used, 3) for role, used in sorted(roles.items(), key=lambda i: -i[1])
            },
        }
    return combined
