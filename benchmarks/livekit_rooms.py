"""What the ``livekit`` package keeps for every room it joins, with no decart-sync code at all.

Usage: ``python benchmarks/livekit_rooms.py [--quick] [--json PATH] [--cycles K]``

``memory.py --livekit --rounds R`` shows the SDK and the hand-written livekit client keeping
about the same memory for every session served. This script takes the SDK out: each cycle
opens a control WebSocket to the emulator (``livekit_join``, plain JSON), joins the room it is
given with a plain ``rtc.Room``, and leaves it, then collects garbage and trims malloc. Per mode,
in a fresh process (it re-runs itself in a private network namespace, as ``e2e.py --livekit``
does: libwebrtc never uses loopback interfaces):

* ``join v1``: join and leave in single-peer-connection mode (``/rtc/v1``, the package's
  default and what LiveKit's servers serve); nothing published or subscribed;
* ``join v0``: the same with two peer connections (``single_peer_connection=False``);
* ``session v1``: a whole producer session (:class:`_raw_livekit_client.RawLiveKitSession`:
  publish the camera, receive the model's video for two seconds), then close.

Figures: malloc's bytes in use (``mallinfo2``) after each cycle, and the least-squares slope
over the cycles after the first two (which also pay first-use costs), in KB per room; the RSS
slope beside it; threads left. A slope near 0 means the package gives a room back; anything
steady is kept for the life of the process. Reported, never asserted.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _common
import aiohttp
from _emulator_process import EmulatorProcess, profile_argument
from memory import LIBC, child_result, malloc_view

MODES = ("join v1", "join v0", "session v1")
SIZE = (640, 352)
MODEL = "bench-640x352"
FPS = 30
WARM_CYCLES = 2  # left out of the fit: the runtime's first use
TIMEOUT = 30.0
MB = _common.MB


async def _room_ticket(url: str) -> tuple[aiohttp.ClientSession, Any, dict[str, Any]]:
    """A control WebSocket that asked for a room, and the room's credentials."""
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(url)
    await ws.send_str(json.dumps({"type": "livekit_join", "passthrough": True}))
    async for message in ws:
        data = json.loads(message.data)
        if data.get("type") == "livekit_room_info":
            return http, ws, data
        if data.get("type") == "error":
            raise RuntimeError(f"server error: {data.get('error')}")
    raise RuntimeError("the control WebSocket closed before the room info")


async def _join_and_leave(url: str, single_peer_connection: bool) -> None:
    from livekit import rtc

    http, ws, info = await _room_ticket(url)
    try:
        room = rtc.Room(loop=asyncio.get_running_loop())
        options = rtc.RoomOptions(
            auto_subscribe=False, single_peer_connection=single_peer_connection
        )
        await room.connect(info["livekit_url"], info["token"], options)
        await room.disconnect()
    finally:
        await ws.close()
        await http.close()


async def _session(url: str, api_key: str) -> None:
    from _raw_livekit_client import RawLiveKitSession

    width, height = SIZE
    session = RawLiveKitSession(
        url, api_key, MODEL, width=width, height=height, fps=FPS, on_frame=lambda *_: None
    )
    await session.open()
    await asyncio.sleep(2.0)
    await session.close()


def _slope(points: list[tuple[int, float]]) -> float | None:
    if len(points) < 2:
        return None
    rooms, held = zip(*points, strict=True)
    return statistics.linear_regression(rooms, held)[0]


def child(mode: str, url: str, api_key: str, cycles: int) -> int:
    import livekit.rtc  # noqa: F401 - loaded before the baseline

    meter = _common.ProcessMeter()
    realtime = f"{url}/v1/stream?{urlencode({'api_key': api_key, 'model': MODEL})}"
    after: list[dict[str, float]] = []
    for _ in range(cycles):
        if mode == "session v1":
            asyncio.run(asyncio.wait_for(_session(url, api_key), TIMEOUT))
        else:
            join = _join_and_leave(realtime, single_peer_connection=mode.endswith("v1"))
            asyncio.run(asyncio.wait_for(join, TIMEOUT))
        time.sleep(0.5)
        gc.collect()
        if LIBC is not None:
            LIBC.malloc_trim(0)
        after.append({**malloc_view(), "rss_mb": meter.rss() / MB, "threads": meter.threads()})
    fit = list(enumerate(after, start=1))[WARM_CYCLES:]
    heap = _slope([(n, moment["in_use_mb"]) for n, moment in fit if "in_use_mb" in moment])
    rss = _slope([(n, moment["rss_mb"]) for n, moment in fit])
    result = {
        "mode": mode,
        "cycles": cycles,
        "after": after,
        "kept_kb_per_room_heap": None if heap is None else round(heap * 1024, 1),
        "kept_kb_per_room_rss": None if rss is None else round(rss * 1024, 1),
    }
    print(json.dumps({"event": "result", "result": result}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    arguments = _common.parser(__doc__)
    arguments.add_argument("--cycles", type=int, help="rooms joined per mode (12; --quick 4)")
    arguments.add_argument("--child", help="(internal) the mode to measure")
    arguments.add_argument("--url", help="(internal)")
    arguments.add_argument("--api-key", help="(internal)")
    args = arguments.parse_args(argv)
    cycles = args.cycles or (WARM_CYCLES + 2 if args.quick else 12)
    if args.child:
        return child(args.child, args.url, args.api_key, cycles)
    rerun = _common.rerun_for_livekit(True, __file__, argv)
    if rerun is not None:
        return rerun

    import livekit.rtc

    info = _common.machine()
    print(f"machine: {_common.describe_machine(info)}; livekit {livekit.rtc.__version__}")
    print(f"{cycles} rooms per mode, each mode in a fresh process; fit over rooms 3-{cycles}\n")
    rows: list[dict[str, Any]] = []
    with EmulatorProcess([profile_argument(MODEL, *SIZE, FPS)]) as emulator:
        for mode in MODES:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
            command += ["--url", emulator.realtime_url, "--api-key", emulator.api_key]
            command += ["--cycles", str(cycles)]
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=cycles * TIMEOUT, check=False
            )
            result = child_result(done.stdout)
            if result is None:
                tail = "\n".join(done.stderr.strip().splitlines()[-3:])
                print(f"  {mode}: the child failed (exit {done.returncode}): {tail}", flush=True)
                continue
            rows.append(result)
            print(f"  {mode} done", flush=True)
    print()
    _common.print_table(
        ["mode", "rooms", "heap after room 3 / last (MB)", "kept/room heap KB", "kept/room RSS KB"],
        [
            [
                r["mode"],
                str(r["cycles"]),
                f"{_common.fmt(r['after'][WARM_CYCLES].get('in_use_mb'))} / "
                f"{_common.fmt(r['after'][-1].get('in_use_mb'))}",
                _common.signed(r["kept_kb_per_room_heap"], 0),
                _common.signed(r["kept_kb_per_room_rss"], 0),
            ]
            for r in rows
        ],
    )
    print(
        "kept/room: least-squares slope of malloc's bytes in use (heap) and of RSS after each "
        f"room left, over rooms {WARM_CYCLES + 1}-{cycles}.\n"
    )
    kept = ", ".join(f"{r['mode']} {_common.signed(r['kept_kb_per_room_heap'], 0)}" for r in rows)
    summary = f"livekit_rooms: KB of heap kept per room joined: {kept}"
    settings = {"cycles": cycles, "warm_cycles": WARM_CYCLES, "size": list(SIZE)}
    figures = {"machine": info, "settings": settings, "rows": rows, "summary": summary}
    _common.write_json(args.json, figures)
    print(summary)
    return 0 if len(rows) == len(MODES) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
