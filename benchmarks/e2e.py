"""End-to-end latency and throughput of a session against the emulator, per model profile.

Usage: ``python benchmarks/e2e.py [--quick] [--json PATH] [--duration S] [--only LABEL]
[--no-custom-profile] [--livekit]``

For every distinct realtime profile in the model registry (fps, width, height; aliases are
folded) and for a 640x352 profile, frames carrying their sequence number in pixels (the SDK's
:mod:`decart_sync.media.timecode`) go through a session and the emulator in *passthrough* (no
prompt: the latency of the path, not of an effect) and are read back in the user's thread:

* **sdk VP8 / sdk H264**: ``client.realtime.connect(model, PushSource(), video_codec=...)``; a
  feeder thread renders the SDK's test pattern at the model size, stamps it and calls ``send()``;
  the main thread reads ``session.frames().get_info()``. Latency: from just before ``send()`` to
  ``get_info()`` returning the BGR array. The track sends a pushed frame as it arrives (at most
  at the model's rate); the feeder runs slightly slower than the model's rate so that its phase
  against the emulator's output clock sweeps a whole interval during the run (a real camera is
  not in phase with the service either). Each row is three sessions (one in ``--quick``) of a
  third of the time each, pooled.
* **sdk H264 livekit** (with ``--livekit``): the same, over the LiveKit transport: the session
  joins the emulator's room with the ``livekit`` package (libwebrtc). libwebrtc never uses
  loopback, so with ``--livekit`` the whole benchmark re-runs itself in a private network
  namespace (``decart_sync.testing``; needs root): both transports are measured in that one run,
  side by side.
* **raw livekit H264** (with ``--livekit``): the hand-written asyncio client of
  :mod:`_raw_livekit_client` (``livekit`` SDK, no decart-sync client code), the LiveKit floor:
  issue 12's goals compare the ``sdk livekit`` row with it (the model's fps, p50 within 10 %,
  CPU per frame no more). Latency: from its loop holding the BGR frame to send (then converted
  and captured, as the SDK converts a pushed frame) to holding the BGR array in its loop. It
  runs as many sessions of the same length as the SDK rows.
* **raw VP8**: the raw asyncio + aiortc client of :mod:`_raw_client` (the floor), which renders
  each frame at its own slot, so it has no wait for a slot; its slots sweep against the
  emulator's clock. Latency: from handing the frame to aiortc to holding the BGR array in its
  loop.
* **raw VP8, frame on marker** (experiment): the raw client with a receive jitter buffer that
  releases a frame on its last packet rather than on the next frame's first packet.

The emulator runs as a separate process, so the CPU of each side is measured apart. 640x352 is
not a registered model: the emulator child registers ``bench-640x352`` for itself (see
:mod:`_emulator_process`); ``--no-custom-profile`` instead sends 640x352 frames to ``lucy-2.1``,
which answers at its own size (1280x720). Figures are reported, never asserted.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import _common
import _pixelcode
from _emulator_process import EmulatorProcess, profile_argument
from _raw_client import RawLoop, RawSession
from _raw_livekit_client import RawLiveKitSession

from decart_sync import DecartClient, ModelDefinition, models
from decart_sync.media import PushSource, timecode

CONNECT_TIMEOUT = 20.0
READ_TIMEOUT = 3.0
CUSTOM_NAME = "bench-640x352"
SMALL_SIZE = (640, 352)
# Frames sent this close to the end of the window may still be in flight: not counted as lost.
IN_FLIGHT_MARGIN = 0.5


@dataclass(frozen=True)
class Profile:
    """What one row measures: the model the client asks for and the sizes on each side."""

    label: str
    aliases: tuple[str, ...]
    model: str  # the name sent to the server
    fps: int
    in_size: tuple[int, int]  # what the client sends (the client's ModelDefinition)
    out_size: tuple[int, int]  # what the emulator answers with

    def definition(self) -> ModelDefinition:
        return ModelDefinition(self.model, "/v1/stream", self.fps, *self.in_size)


def profiles(custom: bool) -> list[Profile]:
    """Every distinct registered profile (first name wins, the others are aliases), then
    640x352."""
    found: dict[tuple[int, int, int], list[str]] = {}
    for name in models.realtime_model_names():
        model = models.realtime(name)
        found.setdefault((model.fps, model.width, model.height), []).append(name)
    result = []
    for (fps, width, height), names in found.items():
        label = f"{names[0]} {width}x{height}@{fps}"
        result.append(
            Profile(label, tuple(names[1:]), names[0], fps, (width, height), (width, height))
        )
    width, height = SMALL_SIZE
    if custom:
        result.append(Profile(f"{width}x{height}@30", (), CUSTOM_NAME, 30, SMALL_SIZE, SMALL_SIZE))
    else:
        base = models.realtime("lucy-2.1")
        result.append(
            Profile(
                f"{width}x{height}@30 -> lucy-2.1",
                (),
                base.name,
                base.fps,
                SMALL_SIZE,
                (base.width, base.height),
            )
        )
    return result


# ---------------------------------------------------------------- sending and receiving


class TakeLog:
    """When the track took each frame the feeder pushed, by sequence number: it splits the
    latency into the wait for the track and the rest of the way, which nothing else shows.

    PushSource's ``on_taken`` (:meth:`taken`, on the loop thread) names a frame by the number
    ``send()`` returned; the feeder says which sequence number that frame carries (it skips
    numbers when it falls behind). Each dict has one writer; a dict store is atomic.
    """

    def __init__(self) -> None:
        self._taken_at: dict[int, float] = {}  # by send()'s number
        self._number_of: dict[int, int] = {}  # sequence number -> send()'s number

    def taken(self, number: int) -> None:
        self._taken_at[number] = time.monotonic()

    def sent(self, seq: int, number: int) -> None:
        self._number_of[seq] = number

    def get(self, seq: int) -> float | None:
        number = self._number_of.get(seq)
        return None if number is None else self._taken_at.get(number)


class Feeder(threading.Thread):
    """The user's producer: renders, stamps and ``send()``s frames at ``fps / (1 + 1/sweep)``.

    Running ``sweep`` frames' worth slower than the model means the send times drift by exactly
    one frame interval against the emulator's output ticks over ``sweep`` frames: the wait for
    the next tick is sampled across its whole range instead of at one arbitrary phase. Being
    slower than the model's rate also means the rate cap never holds a frame back.
    """

    def __init__(
        self, source: PushSource, takes: TakeLog, size: tuple[int, int], fps: int, sweep: int
    ) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        self.log = _pixelcode.SendLog()
        self._source = source
        self._takes = takes
        self._size = size
        self._period = (1.0 + 1.0 / max(sweep, 1)) / fps
        self._stop_event = threading.Event()

    def run(self) -> None:
        width, height = self._size
        start = time.monotonic()
        seq = 0
        while not self._stop_event.is_set():
            frame = timecode.stamped_test_pattern(seq, width, height)
            due = start + seq * self._period
            delay = due - time.monotonic()
            if delay > 0 and self._stop_event.wait(delay):
                return
            self.log.record(seq, time.monotonic())
            try:
                number = self._source.send(frame)
            except Exception:
                return  # the session closed under us: the run is over
            self._takes.sent(seq, number)
            seq += 1
            # Fell behind by more than a frame (busy machine): skip ahead rather than burst.
            late = int((time.monotonic() - start) / self._period) - seq
            if late > 1:
                seq += late

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


@dataclass
class Recorder:
    """What arrives in the user's hands over one or more measurement windows (one per session):
    frame counts, the first arrival of each sequence number and its latency. Fed by one thread
    at a time (the reader, or the raw client's loop)."""

    log: _pixelcode.SendLog = field(default_factory=_pixelcode.SendLog)
    window: tuple[float, float] = (float("inf"), float("inf"))
    first_seen: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    frames: int = 0
    new_frames: int = 0
    unreadable: int = 0
    sent: int = 0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)
    take_wait: list[float] = field(default_factory=list)  # send -> the track takes it
    to_sdk: list[float] = field(default_factory=list)  # taken (or send) -> FrameInfo.received_at
    hop: list[float] = field(default_factory=list)  # received_at -> the user holds the array
    takes: TakeLog | None = None

    def begin(
        self, log: _pixelcode.SendLog, start: float, end: float, takes: TakeLog | None = None
    ) -> None:
        """A new window (and a new session, with its own sequence numbers)."""
        self.log, self.window, self.first_seen = log, (start, end), {}
        self.takes = takes

    def frame(self, array: Any, at: float, received_at: float | None = None) -> None:
        inside = self.window[0] <= at < self.window[1]
        if inside:
            self.frames += 1
        code = timecode.read_number(array)
        if code is None:
            self.unreadable += inside
            return
        seq = timecode.unwrap(code, self.log.last)
        sent = self.log.times.get(seq)
        if sent is None or seq in self.first_seen:
            return  # a repeat of a frame already seen (the emulator repeats when idle)
        self.first_seen[seq] = at
        if inside:
            self.new_frames += 1
            self.latencies.append(at - sent)
            taken = self.takes.get(seq) if self.takes is not None else None
            if taken is not None:
                self.take_wait.append(taken - sent)
            if received_at is not None:
                self.to_sdk.append(received_at - (taken if taken is not None else sent))
                self.hop.append(at - received_at)

    def end(self) -> None:
        """Close the current window: count what was sent in it and what of that arrived."""
        start, end = self.window
        self.seconds += end - start
        counted = [
            seq for seq, at in self.log.times.items() if start <= at < end - IN_FLIGHT_MARGIN
        ]
        self.sent += len(counted)
        self.delivered += sum(1 for seq in counted if seq in self.first_seen)
        self.window = (float("inf"), float("inf"))

    def figures(self, fps: int) -> dict[str, Any]:
        seconds = self.seconds or float("nan")
        return {
            "model_fps": fps,
            "out_fps": round(self.frames / seconds, 2),
            "new_fps": round(self.new_frames / seconds, 2),
            "sent": self.sent,
            "delivered_share": round(self.delivered / self.sent, 4) if self.sent else None,
            "unreadable": self.unreadable,
            "latency_ms": _common.ms_summary(self.latencies),
            "take_wait_ms": _common.ms_summary(self.take_wait) if self.take_wait else None,
            "to_sdk_ms": _common.ms_summary(self.to_sdk) if self.to_sdk else None,
            "hop_ms": _common.ms_summary(self.hop) if self.hop else None,
        }


# ---------------------------------------------------------------- one run each


def _window(emulator: EmulatorProcess) -> _common.Window:
    return _common.Window(
        {
            "sdk": (_common.ProcessMeter(), _common.thread_cpu_snapshot),
            "emulator": (emulator.meter(), emulator.thread_cpu),
        }
    )


def run_sdk(
    emulator: EmulatorProcess,
    client: DecartClient,
    profile: Profile,
    warmup: float,
    duration: float,
    codec: str,
    sessions: int,
    transport: str = "webrtc",
) -> dict[str, Any]:
    """``sessions`` sessions one after the other, ``duration / sessions`` measured each: the
    feeder's sends and the emulator's output clock drift by one interval per session, and a few
    sessions sample the phase more evenly."""
    recorder = Recorder()
    windows = []
    user_dropped = input_dropped = 0
    share = duration / sessions
    for _ in range(sessions):
        window = _window(emulator)
        window.mark()  # the peak includes connecting
        takes = TakeLog()
        source = PushSource(on_taken=takes.taken)
        session = client.realtime.connect(
            profile.definition(),
            source,
            video_codec=codec,
            transport=transport,  # type: ignore[arg-type]
            timeout=CONNECT_TIMEOUT,
        )
        feeder = Feeder(
            source, takes, profile.in_size, profile.fps, sweep=round(profile.fps * share)
        )
        try:
            with session.frames() as consumer:
                feeder.start()
                measuring = False
                phase_end = time.monotonic() + warmup
                while True:
                    now = time.monotonic()
                    if not measuring and now >= phase_end:
                        measuring, phase_end = True, now + share
                        window.start()
                        recorder.begin(feeder.log, now, phase_end, takes)
                        dropped_before = (consumer.dropped, source.frames_dropped)
                    elif measuring and now >= phase_end:
                        break
                    info = consumer.get_info(timeout=READ_TIMEOUT)
                    recorder.frame(info.frame, time.monotonic(), info.received_at)
                    window.poll()
                windows.append(window.stop())
                recorder.end()
                user_dropped += consumer.dropped - dropped_before[0]
                input_dropped += source.frames_dropped - dropped_before[1]
        finally:
            feeder.stop()
            session.disconnect()
    name = {"vp8": "VP8", "h264": "H264"}[codec]
    return {
        "client": "sdk" if transport == "webrtc" else f"sdk {transport}",
        "transport": transport,
        "codec": name,
        "sessions": sessions,
        **_row_head(profile),
        **recorder.figures(profile.fps),
        "user_dropped": user_dropped,
        "input_dropped": input_dropped,
        **_common.combine_windows(windows),
    }


def run_raw(
    emulator: EmulatorProcess,
    loop: RawLoop,
    profile: Profile,
    warmup: float,
    duration: float,
    codec: str,
    frame_on_marker: bool = False,
    transport: str = "webrtc",
    sessions: int = 1,
) -> dict[str, Any]:
    """``sessions`` raw sessions (aiortc, or ``livekit`` with ``transport="livekit"``) one after
    the other, ``duration / sessions`` measured each; each one's input clock sweeps one
    interval against the emulator's within its window."""
    width, height = profile.in_size
    recorder = Recorder()
    windows = []
    share = duration / sessions
    client = "raw, frame on marker" if frame_on_marker else "raw"
    negotiated = None
    for _ in range(sessions):
        common: dict[str, Any] = {
            "width": width,
            "height": height,
            "fps": profile.fps,
            "codec": codec,
            "on_frame": lambda array, decoded, ready: recorder.frame(array, ready),
            "sweep": round(profile.fps * share),
        }
        session: RawSession | RawLiveKitSession
        if transport == "livekit":
            session = RawLiveKitSession(
                emulator.realtime_url, emulator.api_key, profile.model, **common
            )
            client = "raw livekit"
        else:
            session = RawSession(
                emulator.realtime_url,
                emulator.api_key,
                profile.model,
                frame_on_marker=frame_on_marker,
                **common,
            )
        window = _window(emulator)
        window.mark()  # the peak includes connecting
        try:
            loop.run(session.open(), CONNECT_TIMEOUT)
            time.sleep(warmup)
            now = time.monotonic()
            recorder.begin(session.log, now, now + share)
            window.start()
            while time.monotonic() < now + share:
                time.sleep(0.25)
                window.poll()
            windows.append(window.stop())
            recorder.end()
        finally:
            loop.run(session.close(), CONNECT_TIMEOUT)
        # The raw aiortc client reports the codec both directions negotiated; the livekit one
        # publishes the codec it was given.
        if transport == "webrtc":
            negotiated = session.negotiated_codec
    return {
        "client": client,
        "transport": transport,
        "codec": (negotiated or codec).removeprefix("video/").upper(),
        "sessions": sessions,
        **_row_head(profile),
        **recorder.figures(profile.fps),
        **_common.combine_windows(windows),
    }


def _row_head(profile: Profile) -> dict[str, Any]:
    return {
        "profile": profile.label,
        "aliases": list(profile.aliases),
        "model": profile.model,
        "in_size": "x".join(map(str, profile.in_size)),
        "out_size": "x".join(map(str, profile.out_size)),
    }


# ---------------------------------------------------------------- report


def print_rows(rows: list[dict[str, Any]]) -> None:
    columns = [
        "profile / client",
        "fps out",
        "new/s",
        "deliv %",
        "p50 ms",
        "p95",
        "p99",
        "take p50",
        "path p50",
        "hop p50",
        "usr drop",
        "SDK cpu/s",
        "cpu ms/fr",
        "emu cpu/s",
        "SDK peak MB",
        "emu peak MB",
    ]
    table = []
    for row in rows:
        latency, hop = row["latency_ms"], row["hop_ms"]
        take, path = row.get("take_wait_ms"), row.get("to_sdk_ms")
        share = row["delivered_share"]
        table.append(
            [
                f"{row['profile']} {row['client']} {row['codec']}",
                f"{row['out_fps']:.1f}/{row['model_fps']}",
                _common.fmt(row["new_fps"]),
                _common.fmt(None if share is None else share * 100),
                _common.fmt(latency["p50"]),
                _common.fmt(latency["p95"]),
                _common.fmt(latency["p99"]),
                _common.fmt(take["p50"]) if take else "-",
                _common.fmt(path["p50"]) if path else "-",
                _common.fmt(hop["p50"], 2) if hop else "-",
                str(row["user_dropped"]) if "user_dropped" in row else "-",
                _common.fmt(row["sdk"]["cpu_per_s"], 2),
                _common.fmt(row["cpu_ms_per_frame"], 2),
                _common.fmt(row["emulator"]["cpu_per_s"], 2),
                _peak(row["sdk"]),
                _peak(row["emulator"]),
            ]
        )
    _common.print_table(columns, table)
    print("busiest threads (CPU seconds per second), client process | emulator process:")
    for row in rows:
        print(
            f"  {row['profile']} {row['client']} {row['codec']}: "
            f"{_common.format_roles(row['sdk']['thread_roles'])} | "
            f"{_common.format_roles(row['emulator']['thread_roles'])}"
        )
    print()


def _peak(process: dict[str, Any]) -> str:
    """Peak RSS, and how far above the RSS before the row's first session it went (one process
    runs every row, and the allocator keeps what earlier rows freed)."""
    return f"{process['peak_rss_mb']:.0f} ({process['peak_rss_mb'] - process['start_rss_mb']:+.0f})"


# Issue 12's goals for the LiveKit transport, against the hand-written livekit client.
LIVEKIT_FPS_GOAL = 0.98  # of the model's fps
LIVEKIT_P50_GOAL = 1.10  # SDK p50 / raw livekit p50


def livekit_goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile with both livekit rows: fps delivered, p50 within 10 % of the raw livekit
    client's, CPU per frame no more than its."""
    goals = []
    for sdk in (row for row in rows if row["client"] == "sdk livekit"):
        raw = next(
            (r for r in rows if r["client"] == "raw livekit" and r["profile"] == sdk["profile"]),
            None,
        )
        if raw is None:
            continue
        name = sdk["profile"].split()[0]
        goals.append(
            _common.goal(
                f"{name} livekit fps delivered",
                sdk["out_fps"] / sdk["model_fps"],
                lambda r: r >= LIVEKIT_FPS_GOAL,
                "{:.1%} of the model's",
                f">= {LIVEKIT_FPS_GOAL:.0%}",
            )
        )
        sdk_p50, raw_p50 = sdk["latency_ms"]["p50"], raw["latency_ms"]["p50"]
        ratio = None if sdk_p50 is None or not raw_p50 else sdk_p50 / raw_p50
        latency = _common.goal(
            f"{name} livekit p50 vs raw livekit",
            ratio,
            lambda r: r <= LIVEKIT_P50_GOAL,
            "{:.0%}",
            f"<= {LIVEKIT_P50_GOAL:.0%} of raw",
        )
        if ratio is not None:
            latency["measured"] = f"{sdk_p50:.1f} vs {raw_p50:.1f} ms ({ratio:.0%})"
        goals.append(latency)
        goals.append(
            _common.cpu_per_frame_goal(
                f"{name} livekit CPU per frame vs raw livekit",
                sdk["cpu_ms_per_frame"],
                raw["cpu_ms_per_frame"],
            )
        )
    return goals


def summary(rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> str:
    parts = []
    for row in rows:
        livekit = row["client"] in ("sdk livekit", "raw livekit")
        if not livekit and (row["client"] != "sdk" or row["codec"] != "VP8"):
            continue
        latency = row["latency_ms"]
        label = {"sdk livekit": " livekit", "raw livekit": " raw livekit"}.get(row["client"], "")
        parts.append(
            f"{row['profile'].split()[0]}{label} "
            f"{row['out_fps']:.1f}/{row['model_fps']} fps "
            f"p50 {_common.fmt(latency['p50'], 0)} ms p99 {_common.fmt(latency['p99'], 0)} ms"
        )
    line = "e2e: " + ("; ".join(parts) if parts else "no sdk rows")
    if goals:
        met = sum(1 for g in goals if g["met"])
        line += f" (livekit goals met: {met}/{len(goals)})"
    return line


def main(argv: list[str] | None = None) -> int:
    arguments = _common.parser(__doc__)
    arguments.add_argument("--duration", type=float, help="seconds measured per run")
    arguments.add_argument(
        "--only", action="append", metavar="TEXT", help="run profiles whose label contains TEXT"
    )
    _common.add_livekit_flag(arguments)
    arguments.add_argument(
        "--no-custom-profile",
        action="store_true",
        help="send 640x352 to lucy-2.1 instead of registering a 640x352 model in the emulator",
    )
    args = arguments.parse_args(argv)
    rerun = _common.rerun_for_livekit(args.livekit, __file__, argv)
    if rerun is not None:
        return rerun
    warmup = 0.5 if args.quick else 1.5
    duration = args.duration or (1.5 if args.quick else 9.0)
    sdk_sessions = 1 if args.quick else 3
    chosen = profiles(custom=not args.no_custom_profile)
    if args.only:
        chosen = [p for p in chosen if any(text in p.label for text in args.only)]
    elif args.quick:
        chosen = chosen[-1:]  # the small profile: CI checks that everything runs, quickly
    kinds: list[tuple[str, str, bool, str]] = [
        ("sdk", "vp8", False, "webrtc"),
        ("sdk", "h264", False, "webrtc"),
        ("raw", "vp8", True, "webrtc"),
    ]
    if args.livekit:
        kinds[2:2] = [("sdk", "h264", False, "livekit"), ("raw", "h264", False, "livekit")]
    if not args.quick:
        kinds.insert(-1, ("raw", "vp8", False, "webrtc"))

    info = _common.machine()
    print("decart-sync end to end: frames through a session and the emulator, passthrough")
    print(f"machine: {_common.describe_machine(info)}")
    print(f"{warmup:g} s warm-up, {duration:g} s measured per row; emulator in its own process\n")
    extra = [] if args.no_custom_profile else [profile_argument(CUSTOM_NAME, *SMALL_SIZE, 30)]
    rows: list[dict[str, Any]] = []
    loop = RawLoop()
    try:
        with (
            EmulatorProcess(extra) as emulator,
            DecartClient(
                api_key=emulator.api_key,
                base_url=emulator.url,
                realtime_base_url=emulator.realtime_url,
            ) as client,
        ):
            for profile in chosen:
                for kind, codec, on_marker, transport in kinds:
                    if kind == "sdk":
                        row = run_sdk(
                            emulator,
                            client,
                            profile,
                            warmup,
                            duration,
                            codec,
                            sdk_sessions,
                            transport,
                        )
                    else:
                        # The raw livekit client gets the SDK's schedule of sessions: a LiveKit
                        # session's first seconds (bandwidth estimate, encoder) differ from later.
                        row = run_raw(
                            emulator,
                            loop,
                            profile,
                            warmup,
                            duration,
                            codec,
                            on_marker,
                            transport,
                            sdk_sessions if transport == "livekit" else 1,
                        )
                    row["cpu_ms_per_frame"] = _common.cpu_ms_per_frame(
                        row["sdk"]["cpu_per_s"], row["out_fps"]
                    )
                    rows.append(row)
                    print(f"  done: {row['profile']} {row['client']} {row['codec']}", flush=True)
    finally:
        loop.close()
    print()
    print_rows(rows)
    goals = livekit_goals(rows)
    if goals:
        _common.print_goals(goals)
    line = summary(rows, goals)
    _common.write_json(
        args.json,
        {
            "machine": info,
            "settings": {"warmup_s": warmup, "duration_s": duration, "quick": args.quick},
            "rows": rows,
            "goals": goals,
            "summary": line,
        },
    )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
