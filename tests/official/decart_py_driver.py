"""Drive Decart's official Python client (``decart`` 0.0.40, unmodified) against an emulator.

Run by ``test_decart_python.py`` with the side venv's interpreter (``_official_clients.py``),
never imported by our code. Usage::

    python decart_py_driver.py REALTIME_URL REST_URL API_KEY ADMIN_TOKEN [connect-only]

It goes through what an integrator does (producer connect, frames, ``set_prompt``, ``set()`` with
an image, a viewer, ``tokens.create()`` in every request shape, a session on a client token) and
prints one JSON summary on stdout. The client logs to stderr (``decart`` at DEBUG, the rest at
INFO), where the test looks for ERRORs.

Only the network is adjusted, as a careful integrator on one machine would: ICE gathers host
candidates on 127.0.0.1 alone (aioice skips loopback otherwise), and the peer connection gets no
ICE server (the client names Google's STUN server, which must not be contacted from a test).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import aioice.ice
import aiortc
import cv2
import decart.realtime.webrtc_connection as official_connection
import numpy as np
from av import VideoFrame
from decart import (
    DecartClient,
    ModelState,
    Prompt,
    RealtimeClient,
    RealtimeConnectOptions,
    SetInput,
    SubscribeOptions,
    models,
)

T = TypeVar("T")

STEP_TIMEOUT = 60.0  # seconds for any one step; the test bounds the whole run too
MODEL = "lucy-2.1"


class NoIceServersPeerConnection(aiortc.RTCPeerConnection):  # type: ignore[misc]
    """The client's peer connection with its ICE server list emptied: no STUN request leaves."""

    def __init__(self, configuration: Any = None) -> None:
        super().__init__(aiortc.RTCConfiguration(iceServers=[]))


def keep_to_loopback() -> None:
    """Host candidates on 127.0.0.1 only (aioice looks the function up on every gathering),
    and no ICE server in the client's peer connections (it looks the class up by this name)."""
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: (
        ["127.0.0.1"] if use_ipv4 else []
    )
    official_connection.RTCPeerConnection = NoIceServersPeerConnection


async def until(condition: Callable[[], bool]) -> None:
    """Wait, polling, for ``condition``; TimeoutError after STEP_TIMEOUT."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), STEP_TIMEOUT)


class PatternTrack(aiortc.VideoStreamTrack):  # type: ignore[misc]
    """A colourful picture at the client's pace (aiortc's 30 fps clock)."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        super().__init__()
        x = np.linspace(0, 255, width, dtype=np.uint8)
        picture = np.zeros((height, width, 3), np.uint8)
        picture[..., 0] = x
        picture[..., 1] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
        picture[: height // 2, : width // 3] = (220, 30, 30)
        self.picture = picture

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base)
        return frame


class Frames:
    """Counts the frames of the remote tracks the client hands over, and notes their sizes."""

    def __init__(self) -> None:
        self.count = 0
        self.sizes: set[tuple[int, int]] = set()
        self.mean_rgb: list[float] = []
        self._tasks: list[asyncio.Task[None]] = []

    def on_remote_stream(self, track: aiortc.MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

    async def _drain(self, track: aiortc.MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.count += 1
            self.sizes.add((frame.width, frame.height))
            if self.count % 10 == 0:
                rgb = frame.to_ndarray(format="rgb24")
                self.mean_rgb = [float(v) for v in rgb.reshape(-1, 3).mean(axis=0)]

    async def wait(self, more: int) -> None:
        target = self.count + more
        await until(lambda: self.count >= target)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def bounded(step: Awaitable[T]) -> T:
    return await asyncio.wait_for(step, STEP_TIMEOUT)


def png(rgb: tuple[int, int, int]) -> bytes:
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:] = rgb[::-1]  # OpenCV writes BGR
    ok, data = cv2.imencode(".png", picture)
    assert ok
    return bytes(data)


class Admin:
    """The emulator's admin API: what the server applied, seen from outside the client."""

    def __init__(self, rest_url: str, token: str, http: aiohttp.ClientSession) -> None:
        self.url = f"{rest_url}/_emulator/sessions"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = http

    async def sessions(self) -> list[dict[str, Any]]:
        async with self.http.get(self.url, headers=self.headers) as response:
            response.raise_for_status()
            return list((await response.json())["sessions"])


async def producer_and_viewer(
    realtime_url: str, api_key: str, admin: Admin, report: dict[str, Any]
) -> None:
    frames, states, errors, ticks = Frames(), [], [], []
    producer = await bounded(
        RealtimeClient.connect(
            base_url=realtime_url,
            api_key=api_key,
            local_track=PatternTrack(),
            options=RealtimeConnectOptions(
                model=models.realtime(MODEL),
                on_remote_stream=frames.on_remote_stream,
                initial_state=ModelState(prompt=Prompt(text="sketch")),
            ),
        )
    )
    producer.on("connection_change", states.append)
    producer.on("error", lambda error: errors.append(str(error)))
    producer.on("generation_tick", lambda message: ticks.append(message.seconds))
    await frames.wait(10)
    report["connected_state"] = producer.get_connection_state()
    report["frame_sizes"] = sorted(frames.sizes)
    report["after_connect"] = await admin.sessions()

    await bounded(producer.set_prompt("noir"))
    report["after_set_prompt"] = await admin.sessions()
    await frames.wait(5)

    await bounded(producer.set(SetInput(prompt="negative", image=png((0, 200, 0)))))
    report["after_set"] = await admin.sessions()
    await frames.wait(5)

    viewer_frames = Frames()
    viewer = await bounded(
        RealtimeClient.subscribe(
            base_url=realtime_url,
            api_key=api_key,
            options=SubscribeOptions(
                token=producer.subscribe_token or "",
                on_remote_stream=viewer_frames.on_remote_stream,
            ),
        )
    )
    await viewer_frames.wait(5)
    report["viewer_frames"] = viewer_frames.count
    report["viewer_frame_sizes"] = sorted(viewer_frames.sizes)
    report["with_viewer"] = await admin.sessions()
    await viewer.disconnect()
    viewer_frames.stop()

    await until(lambda: bool(ticks))
    await producer.disconnect()
    frames.stop()
    report["frames"] = frames.count
    report["states"] = states
    report["errors"] = errors
    report["ticks"] = ticks


# Every request shape an integrator may send (protocol section 6): each field alone, then all.
TOKEN_REQUESTS: dict[str, dict[str, Any]] = {
    "empty": {},
    "expires_in": {"expires_in": 120},
    "allowed_models": {"allowed_models": [MODEL]},
    "allowed_origins": {"allowed_origins": ["https://app.example"]},
    "metadata": {"metadata": {"user": "ada", "plan": {"tier": 2}}},
    "constraints": {"constraints": {"realtime": {"maxSessionDuration": 300}}},
    "everything": {
        "expires_in": 600,
        "allowed_models": [MODEL, "lucy-2.5"],
        "allowed_origins": ["https://app.example", "http://localhost:3000"],
        "metadata": {"user": "grace"},
        "constraints": {"realtime": {"maxSessionDuration": 120}},
    },
}


async def tokens(
    realtime_url: str, rest_url: str, api_key: str, admin: Admin, report: dict[str, Any]
) -> None:
    client = DecartClient(api_key=api_key, base_url=rest_url, realtime_base_url=realtime_url)
    created: dict[str, Any] = {}
    try:
        for shape, kwargs in TOKEN_REQUESTS.items():
            response = await bounded(client.tokens.create(**kwargs))
            created[shape] = response.model_dump()
    finally:
        await client.close()
    report["tokens"] = created

    # A model-restricted token opens a session of its model; no initial state: passthrough.
    frames = Frames()
    session = await bounded(
        RealtimeClient.connect(
            base_url=realtime_url,
            api_key=created["allowed_models"]["api_key"],
            local_track=PatternTrack(),
            options=RealtimeConnectOptions(
                model=models.realtime(MODEL), on_remote_stream=frames.on_remote_stream
            ),
        )
    )
    await frames.wait(5)
    report["token_session"] = await admin.sessions()
    await session.disconnect()
    frames.stop()


async def connect_only(realtime_url: str, api_key: str, report: dict[str, Any]) -> None:
    frames = Frames()
    session = await bounded(
        RealtimeClient.connect(
            base_url=realtime_url,
            api_key=api_key,
            local_track=PatternTrack(),
            options=RealtimeConnectOptions(
                model=models.realtime(MODEL), on_remote_stream=frames.on_remote_stream
            ),
        )
    )
    await frames.wait(5)
    await session.disconnect()
    frames.stop()
    report["frames"] = frames.count


async def main(
    realtime_url: str, rest_url: str, api_key: str, admin_token: str, *scenario: str
) -> None:
    report: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        admin = Admin(rest_url, admin_token, http)
        if scenario == ("connect-only",):
            await connect_only(realtime_url, api_key, report)
        else:
            await producer_and_viewer(realtime_url, api_key, admin, report)
            await tokens(realtime_url, rest_url, api_key, admin, report)
    print(json.dumps(report, default=list), flush=True)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("decart").setLevel(logging.DEBUG)
    keep_to_loopback()
    asyncio.run(main(*sys.argv[1:]))
