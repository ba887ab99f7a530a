"""A fixed-rate control loop that acts on the newest transformed frame and reports its age.

Run it (no key needed: without ``DECART_API_KEY`` it starts a local emulator in this process)::

    python examples/robot_loop.py --seconds 5 --hz 10

A robot's controller runs on its own clock (here 10 Hz), not on the video's (30 fps): each tick
it takes whatever frame is newest, decides, and acts. So it must never wait for a frame, and it
must know how old the frame it acted on is, since a stale picture means steering blind. Each
tick prints that age (now minus the frame's arrival time); the end prints the worst one.

The "decision" is a stand-in: steer towards the brighter half of the picture.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from decart_sync import DecartTimeoutError, SessionClosedError
from decart_sync.media import test_pattern
from decart_sync.offline import client_or_emulator
from decart_sync.realtime import FrameInfo


def steer(frame: Any) -> float:
    """-1 (hard left) .. +1 (hard right): towards the brighter half of the picture."""
    small = frame[::8, ::8]  # every 8th pixel is plenty to compare two halves, and 64x cheaper
    half = small.shape[1] // 2
    left, right = float(small[:, :half].mean()), float(small[:, half:].mean())
    return (right - left) / 255.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fixed-rate loop on the newest frame.")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run")
    parser.add_argument("--hz", type=float, default=10.0, help="control rate")
    parser.add_argument("--prompt", default="sketch")
    args = parser.parse_args(argv)
    period = 1.0 / args.hz

    ticks = fresh = overruns = 0
    ages: list[float] = []
    # Decart's service when DECART_API_KEY is set; otherwise an emulator in this process.
    with (
        client_or_emulator() as client,
        client.realtime.connect(
            "lucy-2.1", test_pattern(), prompt=args.prompt, timeout=30
        ) as session,
        # "latest" keeps only the newest unread frame: a slow loop skips frames, never lags.
        session.frames(policy="latest") as frames,
    ):
        # Wait for the stream once, before the clock starts; after this, never wait again.
        info: FrameInfo = frames.get_info(timeout=30)
        started = next_tick = time.monotonic()
        for _ in range(round(args.seconds * args.hz)):
            try:
                info = frames.get_info(timeout=0)  # a frame newer than last tick's, if any
                fresh += 1
            except DecartTimeoutError:
                pass  # nothing new since the last tick: act on the same frame, now older
            except SessionClosedError:
                print("the session ended")
                break
            age = time.monotonic() - info.received_at
            ages.append(age)
            command = steer(info.frame)
            ticks += 1
            ms = age * 1000
            print(f"tick {ticks:4d}  frame #{info.seq:<6d} age {ms:6.1f} ms  steer {command:+.3f}")

            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                # Running late: start the next tick now rather than bursting to catch up.
                overruns += 1
                next_tick = time.monotonic()
        elapsed = time.monotonic() - started

    print(f"ticks: {ticks} in {elapsed:.1f} s ({ticks / elapsed:.1f} Hz), late ticks: {overruns}")
    if ages:
        mean_ms, max_ms = 1000 * sum(ages) / len(ages), 1000 * max(ages)
        print(f"frames: {fresh} fresh, {ticks - fresh} reused")
        print(f"frame age: mean {mean_ms:.1f} ms, max {max_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
