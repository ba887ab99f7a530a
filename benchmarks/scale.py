"""Several sessions in one process: threads, CPU and memory per session, fps per session.

Usage: ``python benchmarks/scale.py [--quick] [--json PATH] [--sessions 1,2,4,8] [--duration S]
[--no-custom-profile] [--livekit]``

For each session count N, a fresh child process (so memory and threads start from the same
baseline every time) opens N sessions through one ``DecartClient`` at 640x352, 30 fps, each fed
by the SDK's ``test_pattern()`` source and read by one user thread of its own with
``session.frames()`` (BGR, latest-wins). After a warm-up it measures, over the window:

* per session: frames per second its source sent (``sent/s``), the SDK received from the
  emulator (``recv/s``) and its user thread got (``fps/sess``, mean, and the worst session), so
  a shortfall shows on which side it happens;
* CPU seconds per second of the client process and of the emulator (a separate process), per
  session;
* RSS: ``(RSS with N sessions - RSS before the first session) / N`` per session, and the
  marginal cost of one more session (the slope between the smallest and largest N);
* threads: total, and the SDK's own (total minus the main thread and the N reader threads),
  and how many each session adds.

With ``--livekit`` every N is measured twice, over each transport (``webrtc``, then ``livekit``:
sessions joining the emulator's LiveKit rooms, H.264), and the script re-runs itself in a
private network namespace first, as ``e2e.py --livekit`` does. The ``livekit`` package's native
runtime threads start with the first LiveKit session of a process and live as long as it: the
one-session row carries them, the slope between the largest N does not.

Goals (issue 6, the ``webrtc`` rows): the SDK adds at most 2 threads per session; memory per
640x352 session under 60 MB. Two cores cannot run eight sessions of encode + decode on both
sides at 30 fps: expect the fps per session to fall there; the table says by how much. For
``livekit`` the figures are reported (issue 12). Never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common
from _emulator_process import EmulatorProcess, profile_argument

CUSTOM_NAME = "bench-640x352"
WIDTH, HEIGHT, FPS = 640, 352, 30
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 3.0
CHILD_TIMEOUT = 240.0
THREADS_GOAL = 2.0
MEMORY_GOAL_MB = 60.0
REPORTED = "reported (issue 12)"


# ---------------------------------------------------------------- the child: N sessions


class Reader(threading.Thread):
    """One user thread reading one session's frames, counting those inside the window."""

    def __init__(self, session: Any, index: int) -> None:
        super().__init__(name=f"bench-reader-{index}", daemon=True)
        self.consumer = session.frames()
        self.window = (float("inf"), float("inf"))
        self.frames = 0
        self.failed: str | None = None

    def run(self) -> None:
        consumer = self.consumer
        try:
            while True:
                ok, _ = consumer.read(timeout=READ_TIMEOUT)
                if not ok:
                    return  # the session ended (or stalled): the window shows it
                now = time.monotonic()
                if self.window[0] <= now < self.window[1]:
                    self.frames += 1
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"


def _counters(sessions: list[Any], readers: list[Reader]) -> tuple[float, list[list[int]]]:
    """When, and per session: frames its source sent, frames the SDK received, frames its
    reader missed."""
    counts = [
        [session.source.frames_sent for session in sessions],
        [session.stats().frames_received for session in sessions],
        [reader.consumer.dropped for reader in readers],
    ]
    return time.monotonic(), counts


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def child(args: Any) -> int:
    # Import everything a session touches before the baseline, so the baseline is the process
    # with the SDK loaded and the per-session figures hold only what sessions add.
    import aiortc.codecs  # noqa: F401
    import av  # noqa: F401

    from decart_sync import DecartClient, ModelDefinition
    from decart_sync.media import test_pattern

    meter = _common.ProcessMeter()
    client = DecartClient(
        api_key=args.api_key, base_url=args.url, realtime_base_url=args.realtime_url
    )
    baseline_rss, baseline_threads = meter.rss(), meter.threads()
    model = ModelDefinition(args.model, "/v1/stream", FPS, WIDTH, HEIGHT)
    sessions = []
    readers: list[Reader] = []
    try:
        for index in range(args.child):
            source = test_pattern(width=WIDTH, height=HEIGHT, fps=FPS, seed=index)
            session = client.realtime.connect(
                model, source, transport=args.transport, timeout=CONNECT_TIMEOUT
            )
            sessions.append(session)
            reader = Reader(session, index)
            readers.append(reader)
            reader.start()
        time.sleep(args.warmup)
        window = _common.Window({"client": (meter, _common.thread_cpu_snapshot)})
        _emit({"event": "start"})
        counters_before = _counters(sessions, readers)
        window.start()
        started = time.monotonic()
        for reader in readers:
            reader.window = (started, started + args.duration)
        while time.monotonic() < started + args.duration:
            time.sleep(0.2)
            window.poll()
        figures = window.stop()["client"]
        counters_after = _counters(sessions, readers)
        _emit({"event": "stop"})
        fps = [reader.frames / window.seconds for reader in readers]
        # Where frames go missing: sent by the source, received by the SDK, taken by the reader.
        counted_for = counters_after[0] - counters_before[0]
        sent, received, dropped = (
            [(after - before) for before, after in zip(b, a, strict=True)]
            for b, a in zip(counters_before[1], counters_after[1], strict=True)
        )
        result = {
            "transport": args.transport,
            "sessions": args.child,
            "baseline_rss_mb": round(baseline_rss / _common.MB, 1),
            "baseline_threads": baseline_threads,
            "fps": [round(value, 2) for value in fps],
            "sent_fps": round(sum(sent) / len(sent) / counted_for, 2),
            "received_fps": round(sum(received) / len(received) / counted_for, 2),
            "reader_dropped": sum(dropped),
            "failures": [reader.failed for reader in readers if reader.failed],
            "thread_count_by_role": _common.thread_roles_count(),
            **figures,
        }
    finally:
        for session in sessions:
            session.disconnect()
        client.close()
    _emit({"event": "result", "result": result})
    return 0


# ---------------------------------------------------------------- the parent


def run_child(
    emulator: EmulatorProcess, sessions: int, model: str, transport: str, args: Any
) -> dict[str, Any]:
    """Run one child with ``sessions`` sessions over ``transport``; measure the emulator over the
    child's window."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(sessions),
        "--transport",
        transport,
        "--model",
        model,
        "--url",
        emulator.url,
        "--realtime-url",
        emulator.realtime_url,
        "--api-key",
        emulator.api_key,
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
    ]
    window = _common.Window({"emulator": (emulator.meter(), emulator.thread_cpu)})
    emulator_figures: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + CHILD_TIMEOUT
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if time.monotonic() > deadline:
                process.kill()
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing)
            if event.get("event") == "start":
                window.start()
            elif event.get("event") == "stop":
                emulator_figures = window.stop()["emulator"]
            elif event.get("event") == "result":
                result = event["result"]
        process.wait(30)
    if result is None:
        raise RuntimeError(
            f"the {sessions}-session {transport} child failed (exit {process.returncode})"
        )
    result["emulator"] = emulator_figures
    return result


def analyse(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-session figures, and what one more session adds.

    The SDK's shared pools (``decart-codec``, ``decart-media``: up to 4 workers each) grow with
    the load until they are full, so thread growth between small N mixes pool growth with
    per-session threads; between the two largest N the pools are full and the slope is what a
    session really costs."""
    for result in results:
        n = result["sessions"]
        result["sdk_threads"] = result["threads"] - 1 - n  # minus main and the readers
        result["rss_per_session_mb"] = round((result["rss_mb"] - result["baseline_rss_mb"]) / n, 1)
        result["cpu_per_session"] = round(result["cpu_per_s"] / n, 3)
        result["emulator_cpu_per_session"] = round(result["emulator"]["cpu_per_s"] / n, 3)
        result["fps_mean"] = round(sum(result["fps"]) / n, 2)
        result["fps_min"] = min(result["fps"])
    growth: dict[str, Any] = {
        "rss_per_session_mb_worst": max(r["rss_per_session_mb"] for r in results),
    }
    if len(results) >= 2:
        first, before, last = results[0], results[-2], results[-1]
        growth["sdk_threads_per_added_session"] = round(
            (last["sdk_threads"] - before["sdk_threads"]) / (last["sessions"] - before["sessions"]),
            2,
        )
        growth["sdk_threads_per_session_overall"] = round(
            (last["sdk_threads"] - first["sdk_threads"]) / (last["sessions"] - first["sessions"]),
            2,
        )
        growth["rss_per_added_session_mb"] = round(
            (last["rss_mb"] - first["rss_mb"]) / (last["sessions"] - first["sessions"]), 1
        )
    else:
        only = results[0]
        growth["sdk_threads_per_added_session"] = float(
            only["sdk_threads"] - (only["baseline_threads"] - 1)
        )
    return growth


def last_roles(results: list[dict[str, Any]]) -> str:
    roles = results[-1]["thread_count_by_role"]
    return ", ".join(f"{role} {count}" for role, count in roles.items())


def transport_goals(transport: str, growth: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6's goals for the legacy transport; for livekit, issue 12 asks for the figures."""
    threads_added = growth["sdk_threads_per_added_session"]
    memory = growth["rss_per_session_mb_worst"]
    if transport == "livekit":
        return [
            _common.goal(
                "livekit SDK threads per session", threads_added, lambda v: True, "{:.2f}", REPORTED
            ),
            _common.goal(
                "livekit memory per 640x352 session", memory, lambda v: True, "{:.1f} MB", REPORTED
            ),
        ]
    return [
        _common.goal(
            "SDK threads per session",
            threads_added,
            lambda v: v <= THREADS_GOAL,
            "{:.2f}",
            f"<= {THREADS_GOAL:g}",
        ),
        _common.goal(
            "memory per 640x352 session",
            memory,
            lambda v: v < MEMORY_GOAL_MB,
            "{:.1f} MB",
            f"< {MEMORY_GOAL_MB:g} MB",
        ),
    ]


def print_results(by_transport: dict[str, list[dict[str, Any]]]) -> None:
    rows = [
        [
            transport,
            str(r["sessions"]),
            f"{r['sent_fps']:.1f}",
            f"{r['received_fps']:.1f}",
            f"{r['fps_mean']:.1f}",
            f"{r['fps_min']:.1f}",
            f"{r['cpu_per_s']:.2f}",
            f"{r['cpu_per_session']:.2f}",
            f"{r['emulator']['cpu_per_s']:.2f}",
            f"{r['rss_mb']:.0f}",
            f"{r['rss_per_session_mb']:.1f}",
            str(r["threads"]),
            str(r["sdk_threads"]),
        ]
        for transport, results in by_transport.items()
        for r in results
    ]
    print()
    _common.print_table(
        [
            "transport",
            "sessions",
            "sent/s",
            "recv/s",
            "fps/sess",
            "worst",
            "cpu/s",
            "cpu/sess",
            "emu cpu/s",
            "RSS MB",
            "MB/sess",
            "threads",
            "SDK thr",
        ],
        rows,
    )
    for transport, results in by_transport.items():
        last = results[-1]
        print(
            f"{transport}: baseline before the first session: "
            f"{results[0]['baseline_rss_mb']:.0f} MB, {results[0]['baseline_threads']} threads"
        )
        print(f"  threads by role at the largest N: {last_roles(results)}")
        print(
            "  busiest threads (CPU s/s) at the largest N, client | emulator: "
            f"{_common.format_roles(last['thread_roles'], 5)} | "
            f"{_common.format_roles(last['emulator'].get('thread_roles', {}), 4)}"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    arguments = _common.parser(__doc__)
    arguments.add_argument("--sessions", help="comma-separated session counts (1,2,4,8)")
    arguments.add_argument("--duration", type=float, help="seconds measured per session count")
    arguments.add_argument("--warmup", type=float, help="seconds before measuring")
    arguments.add_argument(
        "--no-custom-profile",
        action="store_true",
        help="use lucy-2.1 (1280x720 out) instead of a 640x352 model registered in the emulator",
    )
    _common.add_livekit_flag(arguments)
    # The child's own options (internal).
    arguments.add_argument("--child", type=int, help="(internal) run N sessions and report")
    arguments.add_argument("--transport", default="webrtc", help="(internal)")
    arguments.add_argument("--model", default=CUSTOM_NAME, help="(internal)")
    arguments.add_argument("--url", help="(internal)")
    arguments.add_argument("--realtime-url", help="(internal)")
    arguments.add_argument("--api-key", help="(internal)")
    args = arguments.parse_args(argv)
    if args.child:
        return child(args)
    rerun = _common.rerun_for_livekit(args.livekit, __file__, argv)
    if rerun is not None:
        return rerun

    counts = [int(n) for n in (args.sessions or ("1,2" if args.quick else "1,2,4,8")).split(",")]
    args.duration = args.duration or (1.5 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    model = "lucy-2.1" if args.no_custom_profile else CUSTOM_NAME
    transports = ["webrtc", "livekit"] if args.livekit else ["webrtc"]
    info = _common.machine()
    print("decart-sync scaling: N sessions in one process, 640x352@30 input, one reader each")
    print(f"machine: {_common.describe_machine(info)}")
    print(
        f"model {model}; transports {', '.join(transports)}; each N in a fresh process; "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured\n"
    )
    extra = [] if args.no_custom_profile else [profile_argument(CUSTOM_NAME, WIDTH, HEIGHT, FPS)]
    by_transport: dict[str, list[dict[str, Any]]] = {}
    with EmulatorProcess(extra) as emulator:
        for transport in transports:
            results = by_transport[transport] = []
            for count in counts:
                results.append(run_child(emulator, count, model, transport, args))
                print(f"  {transport}: {count} session(s) done", flush=True)
    growths = {transport: analyse(results) for transport, results in by_transport.items()}
    print_results(by_transport)
    goals = [goal for t in transports for goal in transport_goals(t, growths[t])]
    _common.print_goals(goals)
    parts = []
    for transport, results in by_transport.items():
        growth = growths[transport]
        parts.append(
            ("" if transport == "webrtc" else f"{transport} ")
            + ", ".join(f"{r['sessions']}x {r['fps_mean']:.1f} fps" for r in results)
            + f"; {growth['sdk_threads_per_added_session']:.2f} SDK threads and "
            f"{growth['rss_per_session_mb_worst']:.1f} MB per session"
        )
    line = (
        "scale: "
        + "; ".join(parts)
        + f" ({'goals met' if all(g['met'] for g in goals) else 'goal missed'})"
    )
    _common.write_json(
        args.json,
        {
            "machine": info,
            "settings": {
                "model": model,
                "size": f"{WIDTH}x{HEIGHT}",
                "fps": FPS,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "sessions": counts,
                "transports": transports,
                "quick": args.quick,
            },
            # The legacy transport keeps its top-level keys; each transport's are under
            # "by_transport".
            "rows": by_transport["webrtc"],
            "growth": growths["webrtc"],
            "by_transport": {
                transport: {"rows": by_transport[transport], "growth": growths[transport]}
                for transport in transports
            },
            "goals": goals,
            "summary": line,
        },
    )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
