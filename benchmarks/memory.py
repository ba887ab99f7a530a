"""Memory per session (issue 14): peak RSS while N sessions stream, and RSS once they are closed,
the SDK beside a hand-written client of the same transport.

Usage: ``python benchmarks/memory.py [--quick] [--json PATH] [--sessions 1,4,8] [--duration S]
[--rounds R] [--no-trace] [--livekit]``

For each transport (``webrtc``; with ``--livekit`` also ``livekit``, the script then re-runs itself
in a private network namespace as ``e2e.py --livekit`` does), each model size (``lucy-2.1``,
1280x720@30, and the emulator's custom 640x352@30 profile that ``e2e.py`` and ``scale.py`` use),
each session count N and each client kind, a fresh child process:

* ``sdk``: one ``DecartClient``, N sessions fed by ``test_pattern()``, each read by a user thread
  of its own with ``session.frames()`` (as ``scale.py``);
* ``raw``: N :class:`_raw_client.RawSession` (aiortc) or :class:`_raw_livekit_client.
  RawLiveKitSession` on one asyncio loop, each frame converted to BGR and dropped.

Each child imports everything first and takes its baseline RSS, then runs two identical rounds
(``--rounds R`` for more; open N sessions, stream for the duration, close them all, let them
settle) and notes, per round, the peak RSS (the kernel's high-water mark, reset at the round's
start) and the RSS after close. The second round tells memory given back from memory kept and
reused. After the last, the child collects garbage and calls glibc's ``malloc_trim(0)``, so the
table shows how much of what is left is Python garbage, how much free memory the allocator keeps,
and how much is live.

Retention (``--rounds R`` with R >= 3): what each session served leaves behind for good, the
least-squares slope of the RSS after close and of malloc's bytes in use after close
(``mallinfo2``) against the sessions served so far (round index * N), in KB per session. Round 1
is left out of the fit: it also pays first-use costs (library code paged in, runtime threads
started) that the later rounds reuse and that would read as a leak. A slope near 0 means closed
sessions give everything back; a steady one is a leak that grows with every session a
long-lived process serves, too small to tell apart in two rounds. The heap slope is the sharper:
RSS also moves with the free memory the allocator keeps or hands back.

Where the memory is: at each moment the child also reads ``/proc/self/smaps_rollup`` (anonymous
vs file-backed) and glibc's ``mallinfo2()`` (bytes in malloc's arenas, in use and free, and in
mmapped chunks). At the largest N of each size, one more round runs under ``tracemalloc`` (its
own overhead stays out of the RSS figures) and reports the top 10 Python allocation sites at the
peak and what is still allocated after close, and the SDK-related objects alive after close.

Goals (issue 14): per session, peak RSS no more than the hand-written client's + 10 % at every
size; after all sessions close, within 20 MB of the RSS before the first session, after a second
round too. Reported, never asserted.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _common
from _emulator_process import EmulatorProcess, profile_argument

CUSTOM_NAME = "bench-640x352"
CUSTOM_SIZE = (640, 352)
FPS = 30
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 3.0
CHILD_TIMEOUT = 300.0  # for the default two rounds; more rounds get proportionally more
ROUNDS = 2
PEAK_GOAL = 1.10  # SDK peak per session <= raw's * 1.10
RETURN_GOAL_MB = 20.0
TOP = 10
MB = _common.MB


# ---------------------------------------------------------------- native views


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None  # not glibc >= 2.33: the native view is left out


LIBC = _libc()


def malloc_arenas() -> int | None:
    """How many malloc arenas glibc has made (one per thread that allocated while the others
    were busy, up to 8 per core); each keeps its own free memory."""
    if LIBC is None:
        return None
    try:
        LIBC.fopen.restype = ctypes.c_void_p
        LIBC.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        LIBC.fclose.argtypes = [ctypes.c_void_p]
        LIBC.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        with tempfile.NamedTemporaryFile("r", encoding="ascii", suffix=".xml") as xml:
            stream = LIBC.fopen(xml.name.encode(), b"w")
            if not stream:
                return None
            LIBC.malloc_info(0, stream)
            LIBC.fclose(stream)
            return xml.read().count("<heap nr=")
    except (AttributeError, OSError):
        return None


def malloc_view() -> dict[str, float]:
    """glibc's own accounting, summed over all its arenas: bytes in the arenas (``arena``),
    of which in use (``in_use``) and free but kept (``free_kept``), and in mmapped chunks
    (``mmapped``: freed chunks there go back to the OS at once). Python's small-object
    allocator and libraries that mmap on their own are not in it."""
    if LIBC is None:
        return {}
    info = LIBC.mallinfo2()
    return {
        "arena_mb": round(info.arena / MB, 1),
        "in_use_mb": round(info.uordblks / MB, 1),
        "free_kept_mb": round(info.fordblks / MB, 1),
        "mmapped_mb": round(info.hblkhd / MB, 1),
        "arenas": malloc_arenas() or 0,
    }


def smaps_view() -> dict[str, float]:
    """Anonymous (heaps, arenas, stacks, Python's pools) vs file-backed (libraries) RSS."""
    wanted = {"Rss": "rss_mb", "Anonymous": "anon_mb", "Pss_File": "file_mb"}
    figures: dict[str, float] = {}
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                key, _, rest = line.partition(":")
                if key in wanted:
                    figures[wanted[key]] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return figures


def moment(meter: _common.ProcessMeter) -> dict[str, Any]:
    return {
        "rss_mb": round(meter.rss() / MB, 1),
        "threads": meter.threads(),
        **smaps_view(),
        **malloc_view(),
    }


def live_objects() -> dict[str, int]:
    """Objects of the media libraries and the SDK that the garbage collector sees alive, most
    first: what a closed session may still be holding."""
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, (type, enum.Enum)):
            continue  # classes and enum members live as long as their module
        kind = type(obj)
        module = kind.__dict__.get("__module__")
        if isinstance(module, str) and module.split(".")[0] in (
            "decart_sync",
            "aiortc",
            "av",
            "livekit",
            "aioice",
        ):
            name = f"{module}.{kind.__qualname__}"
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:TOP])


def top_sites(statistics: list[Any]) -> list[dict[str, Any]]:
    root = str(Path(sys.prefix).parent)
    return [
        {
            "site": f"{stat.traceback[0].filename.replace(root, '.')}:{stat.traceback[0].lineno}",
            "mb": round(stat.size / MB, 2),
            "count": stat.count,
        }
        for stat in statistics[:TOP]
    ]


# ---------------------------------------------------------------- the children


class SdkSessions:
    """N SDK sessions over one client, each read by a user thread."""

    def __init__(self, args: Any) -> None:
        import aiortc.codecs  # noqa: F401 - loaded before the baseline
        import av  # noqa: F401

        from decart_sync import DecartClient, ModelDefinition
        from decart_sync.media import test_pattern

        if args.transport == "livekit":
            import livekit.rtc  # noqa: F401
        self._test_pattern = test_pattern
        self.args = args
        self.client = DecartClient(
            api_key=args.api_key, base_url=args.url, realtime_base_url=args.realtime_url
        )
        self.model = ModelDefinition(args.model, "/v1/stream", FPS, args.width, args.height)
        self.sessions: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.frames = 0
        self._lock = threading.Lock()

    def _read(self, consumer: Any) -> None:
        while True:
            try:
                ok, _ = consumer.read(timeout=READ_TIMEOUT)
            except Exception:
                return
            if not ok:
                return
            with self._lock:
                self.frames += 1

    def open(self) -> None:
        for index in range(self.args.child):
            source = self._test_pattern(
                width=self.args.width, height=self.args.height, fps=FPS, seed=index
            )
            session = self.client.realtime.connect(
                self.model, source, transport=self.args.transport, timeout=CONNECT_TIMEOUT
            )
            self.sessions.append(session)
            reader = threading.Thread(
                target=self._read, args=(session.frames(),), name=f"bench-reader-{index}"
            )
            reader.start()
            self.threads.append(reader)

    def close(self) -> None:
        for session in self.sessions:
            session.disconnect()
        for reader in self.threads:
            reader.join(READ_TIMEOUT + 2)
        self.sessions.clear()
        self.threads.clear()

    def shutdown(self) -> None:
        self.client.close()


class RawSessions:
    """N hand-written sessions (aiortc or livekit) on one asyncio loop thread."""

    def __init__(self, args: Any) -> None:
        from _raw_client import RawLoop, RawSession

        self._kind: Any = RawSession
        if args.transport == "livekit":
            from _raw_livekit_client import RawLiveKitSession

            self._kind = RawLiveKitSession
        self.args = args
        self.loop = RawLoop()
        self.sessions: list[Any] = []
        self.frames = 0

    def _on_frame(self, array: Any, decoded: float, ready: float) -> None:
        self.frames += 1  # on the loop thread only

    def open(self) -> None:
        for _ in range(self.args.child):
            session = self._kind(
                self.args.realtime_url,
                self.args.api_key,
                self.args.model,
                width=self.args.width,
                height=self.args.height,
                fps=FPS,
                on_frame=self._on_frame,
            )
            self.sessions.append(session)
            self.loop.run(session.open(), CONNECT_TIMEOUT)

    def close(self) -> None:
        for session in self.sessions:
            self.loop.run(session.close(), CONNECT_TIMEOUT)
        self.sessions.clear()

    def shutdown(self) -> None:
        self.loop.close()


def _round(sessions: Any, meter: _common.ProcessMeter, args: Any) -> dict[str, Any]:
    """Open N sessions, stream, close them all, settle: the peak and the moments around it."""
    meter.reset_peak()
    before = sessions.frames
    sessions.open()
    time.sleep(args.warmup)
    counted = sessions.frames
    started = time.monotonic()
    while time.monotonic() < started + args.duration:
        time.sleep(0.2)
        meter.poll()
    fps = (sessions.frames - counted) / (time.monotonic() - started) / args.child
    streaming = moment(meter)
    peak = meter.peak_rss()
    sessions.close()
    time.sleep(args.settle)
    return {
        "peak_rss_mb": round(peak / MB, 1),
        "streaming": streaming,
        "after_close": moment(meter),
        "fps_per_session": round(fps, 1),
        "frames": sessions.frames - before,
    }


def _traced_round(sessions: Any, args: Any) -> dict[str, Any]:
    """The same round under tracemalloc: Python allocation sites at the end of streaming, and
    what is still allocated after close that was not before the round."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.take_snapshot()
    sessions.open()
    time.sleep(args.warmup + args.duration)
    peak = tracemalloc.take_snapshot()
    traced_peak = tracemalloc.get_traced_memory()[0]
    sessions.close()
    time.sleep(args.settle)
    after = tracemalloc.take_snapshot()
    traced_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "traced_at_peak_mb": round(traced_peak / MB, 1),
        "traced_after_close_mb": round(traced_after / MB, 1),
        "top_at_peak": top_sites(peak.statistics("lineno")),
        "top_left_after_close": top_sites(
            [s for s in after.compare_to(start, "lineno") if s.size_diff > 0]
        ),
        "live_objects_after_close": live_objects(),
    }


def child(args: Any) -> int:
    meter = _common.ProcessMeter()
    sessions: Any = SdkSessions(args) if args.kind == "sdk" else RawSessions(args)
    gc.collect()
    time.sleep(0.3)
    result: dict[str, Any] = {
        "client": args.kind,
        "transport": args.transport,
        "size": f"{args.width}x{args.height}",
        "sessions": args.child,
        "baseline": moment(meter),
    }
    try:
        result["rounds"] = [_round(sessions, meter, args) for _ in range(args.rounds)]
        # What is left after the rounds: Python garbage, then what the allocator keeps free.
        gc.collect()
        result["after_gc"] = moment(meter)
        if LIBC is not None:
            LIBC.malloc_trim(0)
            result["after_trim"] = moment(meter)
        result["live_objects_after_close"] = live_objects()
        if args.trace:
            # tracemalloc slows every allocation: on two cores the largest N may not connect
            # in time, and the RSS rounds are worth keeping then.
            try:
                result["trace"] = _traced_round(sessions, args)
            except Exception as exc:
                sessions.close()
                result["trace_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sessions.shutdown()
    print(json.dumps({"event": "result", "result": result}), flush=True)
    return 0


# ---------------------------------------------------------------- the parent


def child_command(
    emulator: EmulatorProcess,
    kind: str,
    transport: str,
    size: tuple[str, int, int],
    count: int,
    trace: bool,
    args: Any,
) -> list[str]:
    model, width, height = size
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--child", str(count), "--kind", kind, "--transport", transport),
        *("--model", model, "--width", str(width), "--height", str(height)),
        *("--url", emulator.url, "--realtime-url", emulator.realtime_url),
        *("--api-key", emulator.api_key),
        *("--warmup", str(args.warmup), "--duration", str(args.duration)),
        *("--settle", str(args.settle), "--rounds", str(args.rounds)),
        *(["--trace"] if trace else []),
    ]


def run_children(
    commands: dict[str, list[str]], together: bool, timeout: float = CHILD_TIMEOUT
) -> list[dict[str, Any]]:
    """Each client kind in a process of its own; ``together`` runs them at the same time (for
    ``--quick``: RSS is per process, so only the CPU they share changes)."""
    results = []
    started: dict[str, subprocess.Popen[str]] = {}
    for kind, command in commands.items():
        started[kind] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if not together:
            results.append(_finish(kind, started.pop(kind), timeout))
    results += [_finish(kind, process, timeout) for kind, process in started.items()]
    return [result for result in results if result is not None]


def _finish(kind: str, process: subprocess.Popen[str], timeout: float) -> dict[str, Any] | None:
    """The child's figures; None (and its error printed) when it failed, so one overloaded
    combination does not lose the others."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    result = child_result(stdout)
    if result is not None:
        return analyse(result)
    tail = "\n".join(stderr.strip().splitlines()[-3:])
    print(f"  the {kind} child failed (exit {process.returncode}): {tail}", flush=True)
    return None


def child_result(stdout: str) -> dict[str, Any] | None:
    """The ``{"event": "result", "result": ...}`` line a child printed last; None without one."""
    for line in reversed(stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # not ours (a library printing)
        if isinstance(event, dict) and event.get("event") == "result":
            result: dict[str, Any] = event["result"]
            return result
    return None


def retention_kb(rounds: list[dict[str, Any]], n: int, key: str) -> float | None:
    """KB that each session served leaves behind: the least-squares slope of ``key`` after close
    against the sessions served by then, over rounds 2 onwards (round 1 also pays first-use
    costs, which the later rounds reuse). None with fewer than two such rounds, or without the
    figure (``in_use_mb`` needs glibc's mallinfo2)."""
    points = [
        ((index + 1) * n, one["after_close"][key])
        for index, one in enumerate(rounds)
        if index > 0 and one["after_close"].get(key) is not None
    ]
    if len(points) < 2:
        return None
    served, held = zip(*points, strict=True)
    slope, _ = statistics.linear_regression(served, held)
    return round(slope * 1024, 1)


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    """Per-session peak, what each moment holds above the baseline, and with three rounds or
    more what each session served keeps."""
    base = result["baseline"]["rss_mb"]
    n = result["sessions"]
    first, second = result["rounds"][:2]
    result["peak_per_session_mb"] = round((first["peak_rss_mb"] - base) / n, 1)
    result["peak2_per_session_mb"] = round((second["peak_rss_mb"] - base) / n, 1)
    result["after_close_mb"] = round(first["after_close"]["rss_mb"] - base, 1)
    result["after_round2_mb"] = round(second["after_close"]["rss_mb"] - base, 1)
    result["after_gc_mb"] = round(result["after_gc"]["rss_mb"] - base, 1)
    trimmed = result.get("after_trim")
    result["after_trim_mb"] = None if trimmed is None else round(trimmed["rss_mb"] - base, 1)
    result["retained_kb_per_session_rss"] = retention_kb(result["rounds"], n, "rss_mb")
    result["retained_kb_per_session_heap"] = retention_kb(result["rounds"], n, "in_use_mb")
    return result


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 14's two goals per transport and size, judged on the worst N."""
    result = []
    keys = sorted({(r["transport"], r["size"]) for r in rows}, key=lambda k: (k[0] != "webrtc", k))
    for transport, size in keys:
        here = [r for r in rows if r["transport"] == transport and r["size"] == size]
        sdk = {r["sessions"]: r for r in here if r["client"] == "sdk"}
        raw = {r["sessions"]: r for r in here if r["client"] == "raw"}
        ratios = [
            (sdk[n]["peak_per_session_mb"] / raw[n]["peak_per_session_mb"], n)
            for n in sdk
            if n in raw and raw[n]["peak_per_session_mb"] > 0
        ]
        label = f"{transport} {size}"
        if not sdk:
            continue  # its children failed: printed above
        if ratios:
            worst, n = max(ratios)
            item = _common.goal(
                f"{label} peak/session vs raw",
                worst,
                lambda v: v <= PEAK_GOAL,
                "{:.0%} of raw",
                f"<= {PEAK_GOAL:.0%} of raw",
            )
            item["measured"] = (
                f"{sdk[n]['peak_per_session_mb']:.1f} vs {raw[n]['peak_per_session_mb']:.1f} MB "
                f"at N={n} ({worst:.0%})"
            )
        else:
            item = _common.goal(f"{label} peak/session vs raw", None, bool, "", "")
        result.append(item)
        left = max(
            (max(r["after_close_mb"], r["after_round2_mb"]), r["sessions"]) for r in sdk.values()
        )
        item = _common.goal(
            f"{label} after close",
            left[0],
            lambda v: v <= RETURN_GOAL_MB,
            "{:+.1f} MB",
            f"<= +{RETURN_GOAL_MB:g} MB",
        )
        item["measured"] += f" at N={left[1]}"
        result.append(item)
    return result


def print_rows(rows: list[dict[str, Any]]) -> None:
    # The retention columns only when there are rounds to fit (all rows have as many).
    retention = any(len(r["rounds"]) >= 3 for r in rows)
    table = [
        [
            f"{r['transport']} {r['size']}",
            str(r["sessions"]),
            r["client"],
            f"{r['rounds'][0]['fps_per_session']:.1f}",
            f"{r['baseline']['rss_mb']:.0f}",
            f"{r['rounds'][0]['peak_rss_mb']:.0f}",
            f"{r['peak_per_session_mb']:.1f}",
            f"{r['peak2_per_session_mb']:.1f}",
            f"{r['after_close_mb']:+.1f}",
            f"{r['after_round2_mb']:+.1f}",
            f"{r['after_gc_mb']:+.1f}",
            _common.signed(r["after_trim_mb"], 1),
            _common.fmt(r["rounds"][1]["after_close"].get("free_kept_mb")),
            str(r["rounds"][1]["after_close"].get("arenas", "-")),
            str(r["rounds"][1]["after_close"]["threads"] - r["baseline"]["threads"]),
            *(
                [
                    _common.signed(r["retained_kb_per_session_heap"], 0),
                    _common.signed(r["retained_kb_per_session_rss"], 0),
                ]
                if retention
                else []
            ),
        ]
        for r in rows
    ]
    _common.print_table(
        [
            "transport size",
            "N",
            "client",
            "fps/s",
            "base MB",
            "peak MB",
            "peak/s",
            "peak2/s",
            "closed",
            "closed2",
            "+gc",
            "+trim",
            "free kept",
            "arenas",
            "+thr",
            *(["kept/s heap KB", "kept/s RSS KB"] if retention else []),
        ],
        table,
    )
    rounds = max((len(r["rounds"]) for r in rows), default=ROUNDS)
    legend = (
        "peak/s, peak2/s: (peak RSS - baseline) / N in rounds 1 and 2; closed, closed2: RSS after "
        "all sessions closed minus baseline, after rounds 1 and 2; +gc, +trim: the same after "
        "gc.collect() and then malloc_trim(0)"
        + (f" (after round {rounds})" if rounds > ROUNDS else "")
        + "; free kept: free bytes glibc's arenas keep after round 2 (MB), in that many arenas; "
        "+thr: threads left after close."
    )
    if retention:
        legend += (
            "\nkept/s heap, kept/s RSS: KB each session served keeps, the least-squares slope of "
            "malloc's bytes in use and of RSS after close against sessions served, over rounds "
            f"2-{rounds} (round 1 also pays first-use costs)."
        )
    print(legend + "\n")


def print_trace(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        trace = r.get("trace")
        if r.get("trace_error"):
            print(
                f"{r['client']} {r['transport']} {r['size']} x{r['sessions']}: traced round "
                f"failed: {r['trace_error']}\n"
            )
        if not trace:
            continue
        at_peak = r["rounds"][0]["streaming"]
        print(
            f"{r['client']} {r['transport']} {r['size']} x{r['sessions']}: at the end of "
            f"streaming RSS {at_peak['rss_mb']:.0f} MB = anon {at_peak.get('anon_mb', 0):.0f} + "
            f"file {at_peak.get('file_mb', 0):.0f}; malloc arenas {at_peak.get('arena_mb', 0):.0f}"
            f" (in use {at_peak.get('in_use_mb', 0):.0f}, free "
            f"{at_peak.get('free_kept_mb', 0):.0f}), mmapped {at_peak.get('mmapped_mb', 0):.0f};"
            f" Python-traced {trace['traced_at_peak_mb']:.1f} MB at peak, "
            f"{trace['traced_after_close_mb']:.1f} MB after close"
        )
        print("  top Python allocation sites at peak:")
        for site in trace["top_at_peak"]:
            print(f"    {site['mb']:8.2f} MB {site['count']:7d}  {site['site']}")
        print("  still allocated after close (vs before the round):")
        for site in trace["top_left_after_close"]:
            print(f"    {site['mb']:8.2f} MB {site['count']:7d}  {site['site']}")
        live = ", ".join(f"{k} {v}" for k, v in r["live_objects_after_close"].items())
        print(f"  objects alive after close: {live or 'none'}\n")


def main(argv: list[str] | None = None) -> int:
    arguments = _common.parser(__doc__)
    arguments.add_argument("--sessions", help="comma-separated session counts (1,4,8)")
    arguments.add_argument("--duration", type=float, help="seconds streamed per round")
    arguments.add_argument("--warmup", type=float, help="seconds streamed before the duration")
    arguments.add_argument("--settle", type=float, help="seconds after close before measuring")
    arguments.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="rounds per child (2); 3 or more also fit what each session served keeps",
    )
    arguments.add_argument(
        "--no-trace", action="store_true", help="skip the tracemalloc round at the largest N"
    )
    _common.add_livekit_flag(arguments)
    # The child's own options (internal).
    arguments.add_argument("--child", type=int, help="(internal) run N sessions and report")
    arguments.add_argument("--kind", default="sdk", help="(internal) sdk or raw")
    arguments.add_argument("--transport", default="webrtc", help="(internal)")
    arguments.add_argument("--model", default=CUSTOM_NAME, help="(internal)")
    arguments.add_argument("--width", type=int, help="(internal)")
    arguments.add_argument("--height", type=int, help="(internal)")
    arguments.add_argument("--url", help="(internal)")
    arguments.add_argument("--realtime-url", help="(internal)")
    arguments.add_argument("--api-key", help="(internal)")
    arguments.add_argument("--trace", action="store_true", help="(internal)")
    args = arguments.parse_args(argv)
    if args.rounds < ROUNDS:
        arguments.error(f"--rounds must be at least {ROUNDS}: rounds 1 and 2 are always reported")
    if args.child:
        return child(args)
    rerun = _common.rerun_for_livekit(args.livekit, __file__, argv)
    if rerun is not None:
        return rerun

    from decart_sync import models

    counts = [int(n) for n in (args.sessions or ("1,2" if args.quick else "1,4,8")).split(",")]
    args.duration = args.duration if args.duration is not None else (1.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    args.settle = args.settle if args.settle is not None else (0.5 if args.quick else 2.0)
    lucy = models.realtime("lucy-2.1")
    sizes = [("lucy-2.1", lucy.width, lucy.height), (CUSTOM_NAME, *CUSTOM_SIZE)]
    transports = ["webrtc", "livekit"] if args.livekit else ["webrtc"]
    info = _common.machine()
    print("decart-sync memory: N sessions in one process, the SDK beside a hand-written client")
    print(f"machine: {_common.describe_machine(info)}")
    print(
        f"sizes {', '.join(f'{w}x{h}' for _, w, h in sizes)} @{FPS}; N {counts}; transports "
        f"{', '.join(transports)}; each client kind and N in a fresh process; "
        f"{'two' if args.rounds == ROUNDS else args.rounds} rounds of "
        f"{args.warmup:g}+{args.duration:g} s streaming, {args.settle:g} s settle after close\n"
    )
    rows: list[dict[str, Any]] = []
    extra = [profile_argument(CUSTOM_NAME, *CUSTOM_SIZE, FPS)]
    timeout = CHILD_TIMEOUT * args.rounds / ROUNDS  # a child's time grows with its rounds
    with EmulatorProcess(extra) as emulator:
        for transport in transports:
            for size in sizes:
                for count in counts:
                    trace = not args.no_trace and count == counts[-1]
                    commands = {
                        kind: child_command(emulator, kind, transport, size, count, trace, args)
                        for kind in ("sdk", "raw")
                    }
                    rows += run_children(commands, args.quick, timeout)
                    print(f"  {transport} {size[1]}x{size[2]} x{count} done", flush=True)
    print()
    print_rows(rows)
    print_trace(rows)
    goal_items = goals(rows)
    _common.print_goals(goal_items)
    missed = sum(not g["met"] for g in goal_items)
    worst_peak = max(
        (r["peak_per_session_mb"], r["transport"], r["size"]) for r in rows if r["client"] == "sdk"
    )
    worst_left = max(
        (max(r["after_close_mb"], r["after_round2_mb"]), r["transport"], r["size"])
        for r in rows
        if r["client"] == "sdk"
    )
    line = (
        f"memory: sdk peak up to {worst_peak[0]:.1f} MB/session ({worst_peak[1]} {worst_peak[2]}),"
        f" up to {worst_left[0]:+.1f} MB left after close ({worst_left[1]} {worst_left[2]}) "
        f"({'goals met' if not missed else f'{missed} of {len(goal_items)} goals missed'})"
    )
    kept = [
        (r["retained_kb_per_session_heap"], r["transport"], r["size"])
        for r in rows
        if r["client"] == "sdk" and r["retained_kb_per_session_heap"] is not None
    ]
    if kept:
        worst_kept = max(kept)
        line += (
            f"; sdk heap kept up to {worst_kept[0]:+.0f} KB per session served "
            f"({worst_kept[1]} {worst_kept[2]})"
        )
    _common.write_json(
        args.json,
        {
            "machine": info,
            "settings": {
                "sizes": [f"{w}x{h}" for _, w, h in sizes],
                "models": [name for name, _, _ in sizes],
                "fps": FPS,
                "sessions": counts,
                "transports": transports,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "settle_s": args.settle,
                "rounds": args.rounds,
                "quick": args.quick,
                "pid": os.getpid(),
            },
            "rows": rows,
            "goals": goal_items,
            "summary": line,
        },
    )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
