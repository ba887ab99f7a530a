"""Drive Decart's official Python client ``decart`` 0.2.4 (LiveKit era, unmodified) against an
emulator.

Run by ``decart_py_livekit_host.py`` with the side venv's interpreter (``_official_clients.py``),
inside the private network namespace the host runs in (libwebrtc connects nowhere else here);
never imported by our code. Usage::

    python decart_py_livekit_driver.py REALTIME_URL API_KEY WIDTH HEIGHT

It does what an integrator does: a camera track (a ``livekit`` ``VideoSource`` fed a synthetic
picture of WIDTHxHEIGHT), ``RealtimeClient.connect`` with an initial prompt, the transformed
frames, ``set_prompt``, and a viewer through ``RealtimeClient.subscribe`` with the session's
subscribe token. It prints one JSON report on stdout; the client logs to stderr (``decart`` at
DEBUG, the rest at INFO), where the test looks for ERRORs. Nothing of the client is patched: a
LiveKit room brings its own ICE servers (none, from the emulator).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# tests/_support: what it imports here (numpy, livekit) this side venv has too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _support.livekit_video import TrackPictures
from _support.pictures import difference as same_size_difference
from _support.pictures import pattern
from _support.waiting import until
from decart import (
    ModelState,
    Prompt,
    RealtimeClient,
    RealtimeConnectOptions,
    SubscribeOptions,
    models,
)
from livekit import rtc

MODEL = "lucy-2.1"
FPS = 30
STEP_TIMEOUT = 60.0  # any one step, on a busy machine; the test bounds the whole run too
# Mean absolute difference (0-255) to a reference picture: an effect changes far more than the
# codecs on the way lose, and the negative of the picture is matched within what they lose.
EFFECT_MINIMUM = 30.0
MATCH_TOLERANCE = 14.0


def difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA)
    return same_size_difference(a, b)


class Frames(TrackPictures):
    """Reads a remote video track the client hands over, as RGB pictures."""

    def take(self, track: rtc.RemoteVideoTrack, *_: Any) -> None:
        self.read(track)

    def difference(self, picture: np.ndarray) -> float:
        return float("inf") if self.latest is None else difference(self.latest, picture)


def camera(picture: np.ndarray) -> tuple[rtc.LocalVideoTrack, Callable[[], Any]]:
    """A camera track showing ``picture`` at FPS, and the coroutine function that feeds it."""
    height, width = picture.shape[:2]
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)]).tobytes()

    async def feed() -> None:
        start = time.monotonic()
        n = 0
        while True:
            frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba)
            source.capture_frame(frame, timestamp_us=int(n * 1e6 / FPS))
            n += 1
            await asyncio.sleep(max(0.0, start + n / FPS - time.monotonic()))

    return track, feed


async def main(realtime_url: str, api_key: str, width: int, height: int) -> dict[str, Any]:
    picture = pattern(width, height)
    negative = 255 - picture
    track, feed = camera(picture)
    feeder = asyncio.ensure_future(feed())
    produced, watched = Frames(), Frames()
    report: dict[str, Any] = {"states": [], "errors": [], "ticks": []}
    options = RealtimeConnectOptions(
        model=models.realtime(MODEL),
        on_remote_stream=produced.take,
        initial_state=ModelState(prompt=Prompt(text="sketch")),
    )
    realtime = await asyncio.wait_for(
        RealtimeClient.connect(realtime_url, api_key, track, options), STEP_TIMEOUT
    )
    realtime.on("connection_change", report["states"].append)
    realtime.on("error", lambda error: report["errors"].append(str(error)))
    realtime.on("generation_tick", lambda tick: report["ticks"].append(tick.seconds))
    viewer = None
    try:
        report["session_id"] = realtime.session_id
        report["subscribe_token"] = realtime.subscribe_token
        # The initial prompt was acknowledged before the room was joined: frames show it.
        await until(
            lambda: produced.count >= 30 and produced.difference(picture) > EFFECT_MINIMUM,
            what="30 frames showing the sketch effect",
            timeout=STEP_TIMEOUT,
        )
        assert produced.latest is not None
        report["frames"] = produced.count
        report["size"] = [produced.latest.shape[1], produced.latest.shape[0]]
        report["sketch_difference"] = produced.difference(picture)

        await asyncio.wait_for(realtime.set_prompt("negative"), STEP_TIMEOUT)
        report["prompt_acked"] = "negative"
        await until(
            lambda: produced.difference(negative) < MATCH_TOLERANCE,
            what="the negative picture",
            timeout=STEP_TIMEOUT,
        )
        report["negative_difference"] = produced.difference(negative)
        await until(
            lambda: len(report["ticks"]) >= 1, what="a generation tick", timeout=STEP_TIMEOUT
        )

        viewer = await asyncio.wait_for(
            RealtimeClient.subscribe(
                realtime_url,
                api_key,
                SubscribeOptions(token=realtime.subscribe_token, on_remote_stream=watched.take),
            ),
            STEP_TIMEOUT,
        )
        start = watched.count
        await until(
            lambda: watched.count >= start + 10 and watched.difference(negative) < MATCH_TOLERANCE,
            what="10 frames of the negative picture on the viewer",
            timeout=STEP_TIMEOUT,
        )
        report["viewer_frames"] = watched.count
        report["viewer_difference"] = watched.difference(negative)
        report["viewer_connected"] = viewer.is_connected()
        report["state_before_disconnect"] = realtime.get_connection_state()
    finally:
        if viewer is not None:
            await viewer.disconnect()
        await realtime.disconnect()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await produced.close()
        await watched.close()
    return report


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("decart").setLevel(logging.DEBUG)
    url, key, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, key, width, height))), flush=True)
