"""How long the emulator's effects take per frame, at every model resolution.

Usage: ``python benchmarks/effects.py [--quick] [--json PATH] [--source WxH]``

Each effect renders a moving synthetic scene, one frame after another on one thread, the way the
emulator renders a session: by default the input already has the target size and yuv420p format
(what the decoder hands over when the client sends frames at the model's size); ``--source``
makes it scale from another size first. The budget is 5 ms (median) per frame: the emulator must
keep up with the model's frame rate on one core. Timings are reported, never asserted; the exit
status is 0 unless something crashes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import av
import numpy as np

from decart_sync import models
from decart_sync.emulator.effects import (
    STYLES,
    Effect,
    ReferenceImage,
    decode_reference_image,
    effect_for,
)

BUDGET_MS = 5.0
EXTRA_SIZES = ((640, 352),)
GRADE_PROMPT = "a quiet harbour at dawn"  # names no style, so it gets the hash-derived grade
SCENE_FRAMES = 24  # distinct frames of the moving scene, rendered in a loop


@attrs.frozen
class Cell:
    """One effect at one size."""

    effect: str
    width: int
    height: int
    median_ms: float
    p95_ms: float


def frame_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``, for ``--source``."""
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if min(size) <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return size


def cpu_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} cores ({usable} usable)"


def target_sizes() -> list[tuple[int, int]]:
    """Every distinct model resolution in the registry, then the extra ones."""
    sizes: list[tuple[int, int]] = []
    for name in models.realtime_model_names():
        model = models.realtime(name)
        if (model.width, model.height) not in sizes:
            sizes.append((model.width, model.height))
    sizes.extend(size for size in EXTRA_SIZES if size not in sizes)
    return sizes


def scene(width: int, height: int, count: int) -> list[av.VideoFrame]:
    """``count`` yuv420p frames of a moving scene: drifting colour gradients, a fine texture
    (edges for the edge-based styles to find) and a bright disc crossing the picture."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:height, 0:width]
    texture = rng.integers(-12, 13, size=(height, width))
    chroma_rows, chroma_cols = np.mgrid[0 : height // 2, 0 : width // 2]
    frames = []
    for index in range(count):
        phase = index / count
        luma = 40 + (cols + rows + int(phase * width)) % 160 + texture
        centre_x, centre_y = int(phase * width), height // 2
        disc = (cols - centre_x) ** 2 + (rows - centre_y) ** 2 < (height // 5) ** 2
        luma[disc] = 220
        u = 128 + 60 * np.sin(2 * np.pi * (chroma_cols / (width // 2) + phase))
        v = 128 + 60 * np.cos(2 * np.pi * (chroma_rows / (height // 2) - phase))
        planes = [np.clip(plane, 16, 240).astype(np.uint8) for plane in (luma, u, v)]
        stacked = np.concatenate([plane.reshape(-1) for plane in planes]).reshape(-1, width)
        frames.append(av.VideoFrame.from_ndarray(stacked, format="yuv420p"))
    return frames


def reference_image() -> ReferenceImage:
    """A colourful PNG, encoded and decoded as a client's ``set_image`` would be."""
    rows, cols = np.mgrid[0:256, 0:256]
    rgb = np.stack([cols, rows, 255 - (cols + rows) // 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return decode_reference_image(buffer.getvalue())


def effects_to_measure(image: ReferenceImage) -> Iterator[Effect]:
    prompts = [None, *(style.keywords[0] for style in STYLES), GRADE_PROMPT]
    for prompt in prompts:
        yield effect_for(prompt, None)
    for prompt in prompts:
        yield effect_for(prompt, image)


def measure(
    effect: Effect, frames: list[av.VideoFrame], width: int, height: int, warmup: int, runs: int
) -> list[float]:
    """Milliseconds per :meth:`Effect.render` call, frame after frame."""
    for index in range(warmup):
        effect.render(frames[index % len(frames)], width, height)
    timings = []
    for index in range(runs):
        frame = frames[index % len(frames)]
        started = time.perf_counter()
        effect.render(frame, width, height)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few frames per cell (for CI)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--source",
        metavar="WxH",
        type=frame_size,
        help="input frame size, scaled to each target (default: the target size itself)",
    )
    args = parser.parse_args(argv)
    warmup, runs = (1, 5) if args.quick else (5, 100)
    source_size: tuple[int, int] | None = args.source

    sizes = target_sizes()
    image = reference_image()
    print("decart-sync emulator effects: milliseconds per frame, Effect.render() on one thread")
    print(f"CPU: {cpu_description()}")
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, PyAV {av.__version__}; "
        f"{runs} frames per cell after {warmup} warm-up"
        + (f"; input {source_size[0]}x{source_size[1]} scaled to each size" if source_size else "")
    )

    cells: list[Cell] = []
    for width, height in sizes:
        in_width, in_height = source_size or (width, height)
        frames = scene(in_width, in_height, SCENE_FRAMES)
        for effect in effects_to_measure(image):
            timings = measure(effect, frames, width, height, warmup, runs)
            cells.append(
                Cell(
                    effect.name,
                    width,
                    height,
                    round(statistics.median(timings), 4),
                    round(float(np.percentile(timings, 95)), 4),
                )
            )

    print_table(cells, sizes)
    worst = max(cells, key=lambda cell: cell.median_ms)
    ok = worst.median_ms <= BUDGET_MS
    if args.json:
        figures = {
            "cpu": cpu_description(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyav": av.__version__,
            "warmup": warmup,
            "runs": runs,
            "source": list(source_size) if source_size else None,
            "budget_ms": BUDGET_MS,
            "cells": [attrs.asdict(cell) for cell in cells],
            "worst": attrs.asdict(worst),
            "ok": ok,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"effects: worst median {worst.median_ms:.1f} ms at {worst.width}x{worst.height} "
        f"({worst.effect}) (budget {BUDGET_MS:.1f} ms) {'OK' if ok else 'OVER BUDGET'}"
    )
    return 0


def print_table(cells: list[Cell], sizes: list[tuple[int, int]]) -> None:
    """Effects down, sizes across, median and 95th percentile in each."""
    by_effect: dict[str, dict[tuple[int, int], Cell]] = {}
    for cell in cells:
        by_effect.setdefault(cell.effect, {})[(cell.width, cell.height)] = cell
    name_width = max(len(name) for name in by_effect) + 2
    print()
    print(" " * name_width + "".join(f"{w}x{h}".rjust(16) for w, h in sizes))
    print("effect".ljust(name_width) + "  median     p95" * len(sizes))
    for name, row in by_effect.items():
        figures = "".join(f"{row[size].median_ms:8.2f}{row[size].p95_ms:8.2f}" for size in sizes)
        print(name.ljust(name_width) + figures)
    print()


if __name__ == "__main__":
    sys.exit(main())
