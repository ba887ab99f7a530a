"""A consumer that reads once a second next to one that reads every frame: memory, freshness,
and whether the slow one costs the fast one anything.

Usage: ``python benchmarks/slow_consumer.py [--quick] [--json PATH] [--seconds S]
[--baseline S] [--model NAME]``

One session (default ``lucy-2.1``, 1280x720@30, passthrough, the SDK's ``test_pattern()`` as
input) against the emulator in its own process. First the fast consumer runs alone for
``--baseline`` seconds; then a slow consumer joins and, for ``--seconds`` seconds (60; a few in
``--quick``), calls ``get_info()`` once a second while the fast one keeps reading every frame.
Both are ``session.frames()`` consumers with the default latest-wins policy.

Reported: RSS of the client process at the start of the slow phase, its peak and its end; the
frames the slow consumer dropped; the age of each frame the slow consumer got, taken the moment
``get_info()`` returns (``time.monotonic() - received_at``); and the fast consumer's fps with
and without the slow one. Goals (issue 6): RSS growth under 20 MB; age never above two frame
intervals; the fast consumer's fps unchanged (we count within 2 % as unchanged). Reported,
never asserted.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import _common
from _emulator_process import EmulatorProcess

from decart_sync import DecartClient, models
from decart_sync.media import test_pattern

CONNECT_TIMEOUT = 20.0
READ_TIMEOUT = 3.0
RSS_GROWTH_GOAL_MB = 20.0
AGE_GOAL_INTERVALS = 2.0
FAST_FPS_TOLERANCE = 0.02


class FastReader(threading.Thread):
    """Reads every frame it can and remembers when each arrived."""

    def __init__(self, consumer: Any) -> None:
        super().__init__(name="bench-fast-reader", daemon=True)
        self.consumer = consumer
        self.arrivals: list[float] = []
        self.failed: str | None = None

    def run(self) -> None:
        try:
            while True:
                ok, _ = self.consumer.read(timeout=READ_TIMEOUT)
                if not ok:
                    return
                self.arrivals.append(time.monotonic())
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"

    def fps(self, start: float, end: float) -> float:
        count = sum(1 for at in self.arrivals if start <= at < end)
        return count / (end - start) if end > start else 0.0


def main(argv: list[str] | None = None) -> int:
    arguments = _common.parser(__doc__)
    arguments.add_argument("--seconds", type=float, help="length of the slow phase (60)")
    arguments.add_argument("--baseline", type=float, help="fast consumer alone first (15)")
    arguments.add_argument("--model", default="lucy-2.1", help="a registered model (lucy-2.1)")
    args = arguments.parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 60.0)
    baseline = args.baseline or (2.0 if args.quick else 15.0)
    warmup = 0.5 if args.quick else 2.0
    model = models.realtime(args.model)
    interval_ms = 1000.0 / model.fps

    info = _common.machine()
    print("decart-sync slow consumer: one reader at 1 frame/s next to one at full speed")
    print(f"machine: {_common.describe_machine(info)}")
    print(
        f"model {model.name} {model.width}x{model.height}@{model.fps}, passthrough; "
        f"{baseline:g} s fast alone, then {seconds:g} s with the slow reader\n"
    )
    meter = _common.ProcessMeter()
    ages: list[float] = []
    rss_samples: list[float] = []
    with (
        EmulatorProcess() as emulator,
        DecartClient(
            api_key=emulator.api_key, base_url=emulator.url, realtime_base_url=emulator.realtime_url
        ) as client,
    ):
        source = test_pattern(width=model.width, height=model.height, fps=model.fps)
        with client.realtime.connect(model, source, timeout=CONNECT_TIMEOUT) as session:
            fast = FastReader(session.frames())
            fast.start()
            time.sleep(warmup)
            alone_start = time.monotonic()
            time.sleep(baseline)
            alone_end = time.monotonic()

            slow = session.frames()
            slow.get_info(timeout=READ_TIMEOUT)  # the first frame: the consumer is live
            dropped_before = slow.dropped
            meter.start()
            rss_start = meter.rss()
            slow_start = time.monotonic()
            for tick in range(1, int(seconds) + 1):
                delay = slow_start + tick - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                frame = slow.get_info(timeout=READ_TIMEOUT)
                ages.append(time.monotonic() - frame.received_at)
                rss_samples.append(meter.rss() / _common.MB)
            slow_end = time.monotonic()
            slow_dropped = slow.dropped - dropped_before
            rss_end = meter.rss()
            rss_peak = meter.peak_rss()
            fast_dropped = fast.consumer.dropped
            slow.close()
        fast.join(READ_TIMEOUT + 2)

    fps_alone = fast.fps(alone_start, alone_end)
    fps_with = fast.fps(slow_start, slow_end)
    fps_ratio = fps_with / fps_alone if fps_alone else 0.0
    growth_mb = (rss_end - rss_start) / _common.MB
    peak_growth_mb = (rss_peak - rss_start) / _common.MB
    age = _common.ms_summary(ages)
    age_max = max(ages) * 1000 if ages else None
    age_limit_ms = AGE_GOAL_INTERVALS * interval_ms

    rows = [
        ["fast reader fps, alone", f"{fps_alone:.2f}"],
        ["fast reader fps, with the slow reader", f"{fps_with:.2f} ({fps_ratio * 100:.1f} %)"],
        ["fast reader frames dropped (whole run)", str(fast_dropped)],
        ["slow reader reads", str(len(ages))],
        ["slow reader frames dropped", str(slow_dropped)],
        [
            "age of the slow reader's frame, p50 / p99 / max",
            f"{_common.fmt(age['p50'], 1)} / {_common.fmt(age['p99'], 1)} / "
            f"{_common.fmt(age_max, 1)} ms",
        ],
        ["RSS at start of slow phase", f"{rss_start / _common.MB:.1f} MB"],
        ["RSS growth at end (peak)", f"{growth_mb:+.1f} MB ({peak_growth_mb:+.1f} MB)"],
    ]
    _common.print_table(["figure", "value"], rows)
    goals = [
        _common.goal(
            "RSS growth",
            max(growth_mb, peak_growth_mb),
            lambda v: v < RSS_GROWTH_GOAL_MB,
            "{:+.1f} MB in " + f"{seconds:g} s",
            f"< {RSS_GROWTH_GOAL_MB:g} MB",
        ),
        _common.goal(
            "age of the slow reader's frame",
            age_max,
            lambda v: v <= age_limit_ms,
            "max {:.1f} ms",
            f"<= {age_limit_ms:.1f} ms (2 intervals)",
        ),
        _common.goal(
            "fast reader's fps",
            fps_ratio if fps_alone and fps_with else None,
            lambda r: r >= 1 - FAST_FPS_TOLERANCE,
            "{:.1%} of alone",
            f">= {(1 - FAST_FPS_TOLERANCE) * 100:.0f} %",
        ),
    ]
    _common.print_goals(goals)
    line = (
        f"slow_consumer: RSS {growth_mb:+.1f} MB in {seconds:g} s, slow frame age max "
        f"{_common.fmt(age_max, 1)} ms (limit {age_limit_ms:.0f}), "
        f"fast {fps_with:.1f} vs {fps_alone:.1f} fps "
        f"({'all goals met' if all(g['met'] for g in goals) else 'goal missed'})"
    )
    _common.write_json(
        args.json,
        {
            "machine": info,
            "settings": {
                "model": model.name,
                "size": f"{model.width}x{model.height}",
                "fps": model.fps,
                "baseline_s": baseline,
                "slow_phase_s": seconds,
                "quick": args.quick,
            },
            "fast": {
                "fps_alone": round(fps_alone, 2),
                "fps_with_slow": round(fps_with, 2),
                "ratio": round(fps_ratio, 4),
                "dropped": fast_dropped,
                "failed": fast.failed,
            },
            "slow": {
                "reads": len(ages),
                "dropped": slow_dropped,
                "age_ms": age,
                "age_max_ms": round(age_max, 3),
                "age_limit_ms": round(age_limit_ms, 3),
            },
            "rss": {
                "start_mb": round(rss_start / _common.MB, 1),
                "end_mb": round(rss_end / _common.MB, 1),
                "peak_mb": round(rss_peak / _common.MB, 1),
                "growth_mb": round(growth_mb, 2),
                "peak_growth_mb": round(peak_growth_mb, 2),
                "samples_mb": [round(value, 1) for value in rss_samples],
            },
            "goals": goals,
            "summary": line,
        },
    )
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
