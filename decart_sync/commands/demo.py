"""``decart-sync demo``: the SDK end to end in one command, offline, in about ten seconds.

It starts the local emulator in this process, streams a synthetic test pattern through a real
WebRTC session, switches the prompt halfway (two visibly different styles), records what comes
back to an MP4, and reports frames, rates and per-frame latency. Latency is measured for real:
every input frame carries its number as a barcode along its bottom edge, and the demo reads it
back out of the transformed frames (see :mod:`decart_sync.media.timecode`).
"""

from __future__ import annotations

import argparse
import re
import sys

import attrs

from decart_sync.client import DecartClient
from decart_sync.commands._common import (
    DEFAULT_MODEL,
    EXIT_USAGE,
    CommandError,
    add_transport_argument,
    check_seconds,
    output_path,
    run_command,
)
from decart_sync.commands._live import LivePlan, Progress, finish, stream_session
from decart_sync.commands.model_spec import model_spec, registered
from decart_sync.media.timecode import StampedPattern

DEFAULT_SECONDS = 10.0
# Two styles that look nothing alike: pencil lines on white paper, then a dark scene with
# glowing edges. Any prompt works; the emulator's style keywords are the ones that show most.
DEFAULT_PROMPT = "sketch"
DEFAULT_SECOND_PROMPT = "neon"
DEFAULT_OUTPUT = "demo.mp4"
# The input's size. The emulator answers at the model's own size whatever it is sent; a small
# input keeps the demo light on a laptop.
DEFAULT_SIZE = "640x352"
_MIN_SIDE, _MAX_SIDE = 128, 3840


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "No API key or network needed: the emulator runs in this process. The bars along the "
        "bottom of the picture carry each input frame's number; reading them back from the "
        "output is how the demo measures per-frame latency."
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        metavar="S",
        help=f"how long to stream (default: {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help=f"the first style (default: {DEFAULT_PROMPT})"
    )
    parser.add_argument(
        "--second-prompt",
        default=DEFAULT_SECOND_PROMPT,
        metavar="PROMPT",
        help=f"the style switched to halfway (default: {DEFAULT_SECOND_PROMPT})",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|NAME:WxH@FPS",
        help=f"realtime model: a registered name, or a profile such as my-model:640x352@30 "
        f"(what `decart-sync emulator --model` serves) (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"where to record the transformed video (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--size",
        default=DEFAULT_SIZE,
        metavar="WxH",
        help=f"size of the synthetic input (default: {DEFAULT_SIZE})",
    )
    add_transport_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="log what the SDK does, to stderr")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x352"`` as (640, 352); CommandError (usage) for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise CommandError(f"--size must look like 640x352, got {text!r}", EXIT_USAGE)
    width, height = int(match[1]), int(match[2])
    if not (_MIN_SIDE <= width <= _MAX_SIDE and _MIN_SIDE // 2 <= height <= _MAX_SIDE):
        raise CommandError(
            f"--size {width}x{height} is out of range: width {_MIN_SIDE}-{_MAX_SIDE}, "
            f"height {_MIN_SIDE // 2}-{_MAX_SIDE}",
            EXIT_USAGE,
        )
    if width % 2 or height % 2:
        raise CommandError(f"--size needs even sides (video is 4:2:0), got {text}", EXIT_USAGE)
    return width, height


def run(args: argparse.Namespace) -> int:
    return run_command("demo", lambda: _demo(args), verbose=args.verbose)


def _demo(args: argparse.Namespace) -> int:
    from decart_sync.emulator import Emulator  # the emulator's dependencies load only here

    width, height = parse_size(args.size)
    seconds = check_seconds(args.seconds)
    for option, text in (("--prompt", args.prompt), ("--second-prompt", args.second_prompt)):
        if not text.strip():
            raise CommandError(f"{option} must not be empty", EXIT_USAGE)
    # The session sends at the input's size; the emulator still answers at the model's size.
    chosen = model_spec(args.model)
    model = attrs.evolve(chosen, width=width, height=height)
    try:
        pattern = StampedPattern(width, height)
    except ValueError as error:
        raise CommandError(f"--size {args.size}: {error}", EXIT_USAGE) from None
    output = output_path(args.output)
    print(
        f"decart-sync demo: {seconds:g} s of a test pattern through {model.name} on a local "
        f'emulator, "{args.prompt}" then "{args.second_prompt}", recorded to {output}',
        flush=True,
    )
    with (
        # A profile is served as `decart-sync emulator --model` serves it.
        Emulator(extra_models=() if registered(chosen) else (chosen,)) as emulator,
        DecartClient(
            api_key=emulator.api_key, base_url=emulator.url, realtime_base_url=emulator.realtime_url
        ) as client,
        pattern.source() as source,
    ):
        plan = LivePlan(
            model=model,
            source=source,
            output=output,
            prompt=args.prompt,
            second_prompt=args.second_prompt,
            seconds=seconds,
            pattern=pattern,
            service=f"the local emulator at {emulator.url}",
            transport=args.transport,
        )
        result = stream_session(client, plan, Progress(sys.stdout))
    return finish("demo", result, sys.stdout)
