"""How long one test-pattern frame takes to render, and to become a track frame.

Run: python benchmarks/test_pattern.py [--frames 300] [--size 1280x704]
Prints milliseconds per frame; asserts nothing (the tests check correctness, not speed).
"""

from __future__ import annotations

import argparse
import time

import av

from decart_sync.media import render_test_pattern
from decart_sync.media.sources._convert import to_track_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1280x704")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    render_test_pattern(0, width, height)  # build the cached backdrop outside the timing
    render_s = convert_s = 0.0
    # One frame at a time, as a track makes them: keeping them all would time page faults.
    for n in range(args.frames):
        started = time.perf_counter()
        image = render_test_pattern(n, width, height)
        rendered = time.perf_counter()
        frame: av.VideoFrame = to_track_frame(image, width, height)
        render_s += rendered - started
        convert_s += time.perf_counter() - rendered
    render_ms = render_s * 1000 / args.frames
    convert_ms = convert_s * 1000 / args.frames

    print(f"{width}x{height}, {args.frames} frames ({frame.format.name} out)")
    print(f"  render:            {render_ms:.3f} ms/frame")
    print(f"  to yuv420p frame:  {convert_ms:.3f} ms/frame")


if __name__ == "__main__":
    main()
