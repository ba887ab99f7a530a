"""``decart-sync run``: stream a video file, a camera or the test pattern through a realtime
model, record the transformed video to an MP4 and report how it went.

It is ``decart-sync demo`` pointed at a real service (Decart's by default, or any
``--base-url``): the same session handling, progress and summary, with the API key taken from
``DECART_API_KEY``. Only the synthetic input carries the demo's timecode, so per-frame latency is
measured for ``--input synthetic`` (against the emulator; a generative model may redraw the
barcode); other inputs report the network round trip instead.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys

import av

from decart_sync.client import DecartClient
from decart_sync.commands._common import (
    DEFAULT_MODEL,
    EXIT_USAGE,
    CommandError,
    add_transport_argument,
    api_key_from_env,
    check_seconds,
    output_path,
    run_command,
)
from decart_sync.commands._live import LivePlan, Progress, finish, stream_session
from decart_sync.commands.model_spec import model_spec
from decart_sync.media.sources import VideoSource, camera, video_file
from decart_sync.media.timecode import StampedPattern

SYNTHETIC = "synthetic"
CAMERA_PREFIX = "camera:"
# The synthetic input's size: the session scales it to the model's size.
_SYNTHETIC_SIZE = (640, 352)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Keep the example's line breaks: it is meant to be copied.
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = """\
The API key comes from DECART_API_KEY. Against a local emulator:

  decart-sync emulator --port 8765 &
  DECART_API_KEY=decart-emulator-key decart-sync run --input synthetic \\
      --prompt anime --seconds 5 --base-url http://127.0.0.1:8765 --output out.mp4
"""
    parser.add_argument(
        "--input",
        required=True,
        metavar="FILE|camera:N|synthetic",
        help="a video file, a camera (camera:0, or camera:/dev/video2), or the test pattern",
    )
    parser.add_argument("--prompt", help="the style to apply")
    parser.add_argument("--image", metavar="FILE|URL", help="a reference image")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|NAME:WxH@FPS",
        help=f"realtime model: a registered name, or a profile such as my-model:640x352@30 "
        f"(what `decart-sync emulator --model` serves) (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="REST base URL (default: $DECART_BASE_URL or Decart's API)",
    )
    parser.add_argument(
        "--realtime-base-url",
        metavar="URL",
        help="realtime base URL (default: $DECART_REALTIME_BASE_URL, else derived from "
        "--base-url, else Decart's)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        metavar="S",
        help="how long to stream (default: until the input ends, or Ctrl-C)",
    )
    parser.add_argument(
        "--output", required=True, metavar="FILE", help="where to record the transformed video"
    )
    add_transport_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="log what the SDK does, to stderr")


def open_input(spec: str) -> tuple[VideoSource, StampedPattern | None]:
    """The source named by ``--input``, and the stamped pattern if it is the synthetic one."""
    if spec == SYNTHETIC:
        pattern = StampedPattern(*_SYNTHETIC_SIZE)
        return pattern.source(), pattern
    if spec.startswith(CAMERA_PREFIX):
        device = spec[len(CAMERA_PREFIX) :]
        if not device:
            raise CommandError("--input camera: needs a device, e.g. camera:0", EXIT_USAGE)
        return camera(int(device) if device.isdigit() else device), None
    return video_file(spec), None


def still_image_note(spec: str) -> str | None:
    """What happens to ``--input`` if it is a single picture (a PNG, a JPEG) rather than a
    video, which a user could not guess: None for anything else."""
    if spec == SYNTHETIC or spec.startswith(CAMERA_PREFIX):
        return None
    # The file opened as a source already; whatever fails here is not this note's business.
    with contextlib.suppress(av.FFmpegError, OSError, IndexError), av.open(spec) as container:
        pictures = sum(1 for _ in itertools.islice(container.decode(video=0), 2))
        if pictures == 1:
            return (
                f"decart-sync run: {spec} is a single picture, not a video: it is sent as one "
                "frame, and the run ends once the transformed frames for it are back"
            )
    return None


def run(args: argparse.Namespace) -> int:
    return run_command("run", lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    model = model_spec(args.model)
    if args.prompt is None and args.image is None:
        raise CommandError("give a --prompt, an --image, or both", EXIT_USAGE)
    seconds = None if args.seconds is None else check_seconds(args.seconds)
    key = api_key_from_env()
    output = output_path(args.output)
    with contextlib.ExitStack() as stack:
        source, pattern = open_input(args.input)
        stack.enter_context(source)
        client = stack.enter_context(
            DecartClient(
                api_key=key, base_url=args.base_url, realtime_base_url=args.realtime_base_url
            )
        )
        until = f"for {seconds:g} s" if seconds else "until the input ends (Ctrl-C stops)"
        print(
            f"decart-sync run: {args.input} through {model.name} at {client.realtime_base_url} "
            f"{until}, recorded to {output}",
            flush=True,
        )
        note = still_image_note(args.input)
        if note is not None:
            print(note, flush=True)
        plan = LivePlan(
            model=model,
            source=source,
            output=output,
            prompt=args.prompt,
            image=args.image,
            seconds=seconds,
            pattern=pattern,
            service=client.realtime_base_url,
            transport=args.transport,
        )
        result = stream_session(client, plan, Progress(sys.stdout))
    return finish("run", result, sys.stdout)
