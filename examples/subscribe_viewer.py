"""Watch another session, read-only, with the subscribe token its producer shares.

Run it (no key needed: without ``DECART_API_KEY`` it starts a local emulator in this process,
and without ``--token`` it starts a producer session to watch)::

    python examples/subscribe_viewer.py --seconds 5

To watch a session running elsewhere, pass its producer's ``session.subscribe_token``; the key
and URLs come from ``DECART_API_KEY`` (and ``DECART_BASE_URL``/``DECART_REALTIME_BASE_URL``)::

    python examples/subscribe_viewer.py --token TOKEN

A viewer receives the same transformed stream as the producer, through the same API (frames,
states, events), but cannot change the prompt or the image.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Sequence

from decart_sync import DecartClient
from decart_sync.media import test_pattern
from decart_sync.offline import client_or_emulator


def watch(client: DecartClient, token: str, seconds: float) -> tuple[int, float]:
    """Watch the session behind ``token`` for ``seconds``; returns (frames, seconds watched)."""
    # The seed's form does the same: RealtimeClient.subscribe(base_url=..., api_key=...,
    # options=SubscribeOptions(token=token)).
    with client.realtime.subscribe(token, timeout=30) as viewer:
        viewer.on("connection_change", lambda state: print(f"viewer: {state}"))
        count = 0
        started = time.monotonic()
        with viewer.frames() as frames:
            while (remaining := started + seconds - time.monotonic()) > 0:
                ok, frame = frames.read(timeout=remaining)
                if not ok:
                    break  # out of time, or the producer ended its session
                if count == 0:
                    height, width = frame.shape[:2]
                    print(f"viewer: first frame, {width}x{height}")
                count += 1
        return count, time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Watch a session with its subscribe token.")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to watch")
    parser.add_argument("--token", help="a producer's subscribe token (default: start one here)")
    parser.add_argument("--prompt", default="neon", help="the producer's prompt")
    args = parser.parse_args(argv)

    if args.token and not os.environ.get("DECART_API_KEY"):
        parser.error("--token needs DECART_API_KEY: the key of the server the session runs on")

    # Decart's service when DECART_API_KEY is set; otherwise an emulator in this process.
    with client_or_emulator() as client, contextlib.ExitStack() as stack:
        token = args.token
        if token is None:
            producer = stack.enter_context(
                client.realtime.connect("lucy-2.1", test_pattern(), prompt=args.prompt, timeout=30)
            )
            print(f"producer: session {producer.session_id}, prompt {args.prompt!r}")
            if producer.subscribe_token is None:
                raise SystemExit("the producer session has no subscribe token")
            token = producer.subscribe_token
        frames, elapsed = watch(client, token, args.seconds)

    print(f"viewer received {frames} frames in {elapsed:.1f} s ({frames / elapsed:.1f} fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
