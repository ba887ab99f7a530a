"""``decart-sync emulator``: run the local emulator from a shell until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from decart_sync.commands.model_spec import model_profile, profile_text
from decart_sync.emulator.auth import DEFAULT_API_KEY

if TYPE_CHECKING:
    from decart_sync.emulator.handle import Emulator

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accept this permanent API key (repeatable; default: {DEFAULT_API_KEY})",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        metavar="N",
        help="at most N producer sessions at once; more get the capacity error",
    )
    parser.add_argument(
        "--max-sessions-per-key",
        type=int,
        default=None,
        metavar="N",
        help="at most N producer sessions at once per API key (an organisation's limit); more "
        "get 'Concurrent session limit reached.'",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="extra_models",
        type=model_profile,
        default=[],
        metavar="NAME:WxH@FPS",
        help="also serve this model profile (repeatable), e.g. my-model:640x352@30",
    )
    parser.add_argument(
        "--legacy-only",
        action="store_true",
        help="serve only the legacy WebRTC offer/answer transport: livekit_join gets "
        "'unknown message type' (as a service without LiveKit rooms would answer)",
    )
    parser.add_argument(
        "--admin-token",
        default=None,
        metavar="T",
        help="token for the admin (fault injection) API (default: random)",
    )


def _banner(emulator: Emulator) -> str:
    served = "".join(
        f"\n  also serves:    {m.name} ({m.width}x{m.height}@{m.fps})"
        for m in emulator.extra_models
    )
    # The SDK, `decart-sync run` and `decart-sync token` all read these variables.
    exports = "\n".join(
        f"    export {name}={shlex.quote(value)}"
        for name, value in (
            ("DECART_API_KEY", emulator.api_key),
            ("DECART_BASE_URL", emulator.url),
            ("DECART_REALTIME_BASE_URL", emulator.realtime_url),
        )
    )
    runs = "".join(
        f"\n    decart-sync run --model {profile_text(model)} ..."
        for model in emulator.extra_models
    )
    if runs:
        exports += f"\n\nand name an extra model to decart-sync run by its profile:\n{runs}"
    # connect("my-model") knows only the registry: an extra model must be registered first.
    registrations = "".join(f"\n    models.register({model!r})" for model in emulator.extra_models)
    imports = "DecartClient, ModelDefinition, models" if registrations else "DecartClient"
    return f"""decart-sync emulator listening
  REST base:      {emulator.url}
  realtime base:  {emulator.realtime_url}
  API key:        {emulator.api_key}
  admin token:    {emulator.admin_token}   (Authorization: Bearer ..., under /_emulator/)
  transports:     {", ".join(sorted(emulator.transports))}{served}

Point the SDK (DecartClient(), decart-sync run) at it from a shell:

{exports}

or connect with:

    from decart_sync import {imports}

    client = DecartClient(
        api_key={emulator.api_key!r},
        base_url={emulator.url!r},
        realtime_base_url={emulator.realtime_url!r},
    ){registrations}

Press Ctrl-C to stop."""


def run(args: argparse.Namespace) -> int:
    for flag, limit in (
        ("--max-sessions", args.max_sessions),
        ("--max-sessions-per-key", args.max_sessions_per_key),
    ):
        if limit is not None and limit < 0:
            print(f"{flag} must be >= 0", file=sys.stderr)
            return 2
    try:
        from decart_sync.emulator.handle import Emulator
    except ImportError as exc:
        print(
            f"the emulator needs its extra ({exc}): pip install 'decart-sync[emulator]'",
            file=sys.stderr,
        )
        return 1
    emulator = Emulator(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_keys or (DEFAULT_API_KEY,)),
        max_sessions=args.max_sessions,
        max_sessions_per_key=args.max_sessions_per_key,
        admin_token=args.admin_token,
        extra_models=args.extra_models,
        transports=("webrtc",) if args.legacy_only else ("webrtc", "livekit"),
    )
    try:
        emulator.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGTERM stops as cleanly as Ctrl-C (SIGINT) does. The handlers stay in place until the
    # emulator has stopped, so that a second Ctrl-C cannot cut the shutdown short.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(_banner(emulator), flush=True)
        while not stop.wait(0.5):
            if not emulator.running:
                print("the emulator stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("emulator stopped", flush=True)
    return 0
