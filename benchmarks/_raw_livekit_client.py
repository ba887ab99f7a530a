"""The LiveKit floor: a producer session written with asyncio, aiohttp and the ``livekit`` SDK
only, no decart_sync client code (the sibling of :mod:`_raw_client`, the aiortc floor).

It follows protocol section 3 (livekit) by hand, in plain JSON: ``livekit_join`` with
``passthrough``, ``livekit_room_info``, then the room: it publishes an ``rtc.VideoSource`` track
(H.264, one layer: simulcast off, as the SDK publishes) and takes the ``inference-server-*``
participant's video through ``rtc.VideoStream(format=I420)``. It publishes at the model's frame
rate with LiveKit's bitrate for the size, as the SDK does (``_livekit.publish_encoding``).

What a careful asyncio programmer would write, and what the SDK does on its side, so the two
compare fairly:

* **input**: :class:`_raw_client.Slots` paces the test pattern with each frame's number in its
  pixels (:mod:`_pixelcode`); each BGR frame is rendered ahead in the executor and held until
  its slot, where ``log`` records it as handed over (the moment e2e.py's SDK rows call
  ``send()``); then it is converted to I420 in the executor (a reused swscale context with one
  thread, as the SDK's source conversion) and given to ``VideoSource.capture_frame``;
* **output**: each received I420 frame becomes a BGR numpy array *on the client's own loop*, with
  one reused swscale context (one thread): measured the cheapest native way to a contiguous BGR
  array at 640x352 and 1280x720 (``VideoFrame.convert(RGB24)`` is slower at 640x352, and its
  bytes are in RGB order, so a BGR array costs a further copy).

libwebrtc (inside ``livekit``) never uses loopback interfaces: run this in a private network
namespace (``decart_sync.testing.netns_command``), as ``_common.rerun_in_netns`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlencode

import _pixelcode
import aiohttp
import av
import numpy as np
from _raw_client import FrameCallback, Slots
from av.video.reformatter import VideoReformatter
from livekit import rtc

from decart_sync.media.timecode import stamped_test_pattern

INFERENCE_PREFIX = "inference-server-"
CODECS = {"h264": rtc.VideoCodec.H264, "vp8": rtc.VideoCodec.VP8}

# One swscale context per executor thread: a context is not safe to share between threads.
_renderers = threading.local()


def _i420(picture: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A BGR picture as one contiguous I420 array."""
    reformatter = getattr(_renderers, "reformatter", None)
    if reformatter is None:
        reformatter = _renderers.reformatter = VideoReformatter()
    frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
    planes: np.ndarray[Any, Any] = reformatter.reformat(
        frame, format="yuv420p", threads=1
    ).to_ndarray()
    return planes


def _encoding(width: int, height: int, fps: int) -> rtc.VideoEncoding:
    """LiveKit's bitrate for the size (its 16:9 presets: the first wider than the long side),
    at the model's frame rate: left to itself LiveKit also takes the preset's frame rate (25 fps
    at 640x352) and libwebrtc drops the frames above it. The SDK publishes the same."""
    presets = ((160, 90_000), (320, 160_000), (384, 180_000), (640, 450_000), (960, 800_000))
    presets += ((1280, 1_700_000), (1920, 3_000_000), (2560, 5_000_000), (3840, 8_000_000))
    bitrate = presets[0][1]
    for preset_width, preset_bitrate in presets:
        bitrate = preset_bitrate
        if preset_width > max(width, height):
            break
    return rtc.VideoEncoding(max_bitrate=bitrate, max_framerate=float(fps))


class RawLiveKitSession:
    """One producer session. Create, then ``await open()`` on a :class:`_raw_client.RawLoop`."""

    def __init__(
        self,
        realtime_url: str,
        api_key: str,
        model: str,
        *,
        width: int,
        height: int,
        fps: int,
        on_frame: FrameCallback,
        codec: str = "h264",
        sweep: int = 0,
    ) -> None:
        query = urlencode({"api_key": api_key, "model": model, "user_agent": "raw-livekit/1"})
        self._url = f"{realtime_url}/v1/stream?{query}"
        self.width, self.height, self.fps = width, height, fps
        self._codec = codec.lower()
        self._on_frame = on_frame
        self._slots = Slots(fps, sweep)
        self.log = _pixelcode.SendLog()
        self.frames_received = 0
        self.negotiated_codec: str | None = None  # the model's video, as the room describes it
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._room: rtc.Room | None = None
        self._source: rtc.VideoSource | None = None
        self._streams: list[rtc.VideoStream] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._room_info: asyncio.Future[dict[str, Any]] | None = None
        self._subscribed = asyncio.Event()
        # The loop thread converts every received frame, one at a time: one context serves.
        self._to_bgr = VideoReformatter()

    async def open(self) -> None:
        """Room joined, track published, the model's video subscribed. Bound it from outside
        (``RawLoop.run(..., timeout)``)."""
        loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self._url)
        self._room_info = loop.create_future()
        self._spawn(self._read_signaling())
        await self._ws.send_str(json.dumps({"type": "livekit_join", "passthrough": True}))
        info = await self._room_info

        room = self._room = rtc.Room(loop=loop)
        room.on("track_subscribed", self._on_track_subscribed)
        await room.connect(info["livekit_url"], info["token"], rtc.RoomOptions(auto_subscribe=True))
        self._source = rtc.VideoSource(self.width, self.height)
        track = rtc.LocalVideoTrack.create_video_track("raw-livekit", self._source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=CODECS[self._codec],
            simulcast=False,
            video_encoding=_encoding(self.width, self.height, self.fps),
        )
        await room.local_participant.publish_track(track, options)
        self._spawn(self._feed(self._source))
        await self._subscribed.wait()

    async def _read_signaling(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            waiter = self._room_info
            if waiter is None or waiter.done():
                continue  # ticks, generation_started: nothing the benchmark needs
            if data.get("type") == "livekit_room_info":
                waiter.set_result(data)
            elif data.get("type") == "error":
                waiter.set_exception(RuntimeError(f"server error: {data.get('error')}"))

    def _on_track_subscribed(
        self, track: rtc.Track, publication: Any, participant: rtc.RemoteParticipant
    ) -> None:
        if not participant.identity.startswith(INFERENCE_PREFIX):
            return
        if track.kind != rtc.TrackKind.KIND_VIDEO:
            return
        self.negotiated_codec = getattr(publication, "mime_type", None) or None
        stream = rtc.VideoStream(
            track, loop=asyncio.get_running_loop(), format=rtc.VideoBufferType.I420
        )
        self._streams.append(stream)
        self._spawn(self._receive(stream))
        self._subscribed.set()

    async def _feed(self, source: rtc.VideoSource) -> None:
        """The input: frame ``k`` rendered ahead in the executor and held until its slot; then,
        as the SDK does with a frame ``send()`` gives it, converted in the executor and
        captured."""
        loop = asyncio.get_running_loop()
        while True:
            slot, due = self._slots.next(loop.time())
            picture = await loop.run_in_executor(
                None, stamped_test_pattern, slot, self.width, self.height
            )
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.log.record(slot, time.monotonic())
            planes = await loop.run_in_executor(None, _i420, picture)
            frame = rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.I420, planes.data)
            source.capture_frame(frame, timestamp_us=round(slot * self._slots.period * 1_000_000))

    async def _receive(self, stream: rtc.VideoStream) -> None:
        async for event in stream:
            decoded = time.monotonic()
            frame = event.frame
            width, height = frame.width, frame.height
            planes = np.frombuffer(frame.data, np.uint8)[: width * height * 3 // 2]
            picture = av.VideoFrame.from_ndarray(
                planes.reshape(height * 3 // 2, width), format="yuv420p"
            )
            array = self._to_bgr.reformat(picture, format="bgr24", threads=1).to_ndarray()
            self.frames_received += 1
            self._on_frame(array, decoded, time.monotonic())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for stream in self._streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
        if self._room is not None:
            with contextlib.suppress(Exception):
                await self._room.disconnect()
        if self._source is not None:
            with contextlib.suppress(Exception):
                await self._source.aclose()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(asyncio.CancelledError):
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2)
