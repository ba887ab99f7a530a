"""Micro-benchmark: what FrameHub.publish costs the loop thread per frame, and what a reader pays.

Run: python benchmarks/frames_hub.py [--frames N] [--width W --height H]

publish runs on the loop thread for every decoded frame, so it must stay flat and small however
many consumers there are; conversion to numpy happens in reader threads, once per format.
"""

from __future__ import annotations

import argparse
import time

import av
import numpy as np

from decart_sync.realtime._frames import FrameHub


def publish_cost(consumers: int, frames: list[av.VideoFrame]) -> float:
    hub = FrameHub()
    held = [hub.consumer() for _ in range(consumers)]  # never read: the worst case, all drop
    started = time.perf_counter()
    for frame in frames:
        hub.publish(frame)
    elapsed = time.perf_counter() - started
    assert all(c.dropped == len(frames) - 1 for c in held)
    return elapsed / len(frames)


def first_read_cost(frames: list[av.VideoFrame]) -> tuple[float, float]:
    """Seconds per frame for the first bgr reader (converts) and a second one (shares)."""
    hub = FrameHub()
    first, second = hub.consumer(), hub.consumer()
    convert = share = 0.0
    for frame in frames:
        hub.publish(frame)
        t0 = time.perf_counter()
        first.get(timeout=0)
        t1 = time.perf_counter()
        second.get(timeout=0)
        t2 = time.perf_counter()
        convert += t1 - t0
        share += t2 - t1
    return convert / len(frames), share / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=352)
    args = parser.parse_args()

    rgb = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), np.uint8)
    # Distinct yuv420p frames, like a decoder's output (a frame converts once, so no reuse).
    pool = [
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        for _ in range(min(args.frames, 300))
    ]
    frames = [pool[i % len(pool)] for i in range(args.frames)]

    print(f"{'what':<40} {'per frame':>12}")
    for consumers in (0, 1, 8):
        cost = publish_cost(consumers, frames)
        print(f"{f'publish, {consumers} consumers':<40} {cost * 1e6:>9.2f} us")
    convert, share = first_read_cost(pool)
    size = f"{args.width}x{args.height}"
    print(f"{f'first bgr get (converts {size})':<40} {convert * 1e3:>9.3f} ms")
    print(f"{'second bgr get (shares the array)':<40} {share * 1e6:>9.2f} us")
    print(f"summary: publish {publish_cost(8, frames) * 1e6:.1f} us/frame with 8 consumers")


if __name__ == "__main__":
    main()
