"""The floor: a producer session written with asyncio, aiohttp and aiortc only, no decart_sync.

It follows protocol section 3 by hand (initial ``set_image`` with nulls for passthrough, or a
``prompt``; its ack; then offer and answer) and hands each decoded frame to a callback *on its
own event loop*, converted to a BGR numpy array right there: what a careful asyncio programmer
would write, with no thread hop. Two things are borrowed from the SDK because they are
configuration, not the path being measured: loopback-only ICE gathering
(``decart_sync._ice.host_addresses``) and an ICE configuration without STUN
(``rtc_configuration([], loopback=True)``).

``codec="h264"`` sets the video transceiver's codec preferences before the offer (as the SDK's
``video_codec`` option does); the emulator answers with the first codec offered that it
supports. ``frame_on_marker=True`` gives it the SDK's receiver changes
(``decart_sync._receivers``: a frame is decoded as soon as its marked last packet is in, not
when the next frame starts, and VP8 on one thread), so the floor can be had either way.

The input track renders the SDK's test pattern at the model's size with its frame number coded in
pixels (:mod:`_pixelcode`), paced at the model's fps; its ``log`` records when each frame was
handed to aiortc.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import json
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

import _pixelcode
import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp

from decart_sync._ice import host_addresses, rtc_configuration
from decart_sync._receivers import tune_receivers
from decart_sync.media.timecode import stamped_test_pattern

T = TypeVar("T")

CLOCK_RATE = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)
# Called on the client's loop with (bgr array, time recv() returned, time the array was ready).
FrameCallback = Callable[[np.ndarray[Any, Any], float, float], None]


class RawLoop:
    """An asyncio loop on a thread of the benchmark's own, like any asyncio app would have."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Encoding and input rendering go to a pool, as in the SDK (which uses its own).
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="raw-media")
        )
        self._thread = threading.Thread(target=self.loop.run_forever, name="raw-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


def _input_frame(seq: int, width: int, height: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(
        stamped_test_pattern(seq, width, height), format="bgr24"
    ).reformat(format="yuv420p")


class Slots:
    """The input clock of a raw client: slots ``(1 + 1/sweep) / fps`` apart (``sweep=0``: exactly
    ``1/fps``), counted from the first call.

    Running slightly slower than the model makes the send times drift through one whole frame
    interval against the emulator's output clock over ``sweep`` frames, so the wait for its next
    tick is sampled over its whole range rather than at one arbitrary phase. A slow caller gets
    the current slot, not a burst of missed ones.
    """

    def __init__(self, fps: int, sweep: int = 0) -> None:
        self.period = (1.0 + (1.0 / sweep if sweep > 0 else 0.0)) / fps
        self._start: float | None = None
        self._slot = -1

    def next(self, now: float) -> tuple[int, float]:
        """The next slot's number and when it is due, on the clock ``now`` comes from."""
        if self._start is None:
            self._start = now
        self._slot = max(self._slot + 1, math.floor((now - self._start) / self.period))
        return self._slot, self._start + self._slot * self.period


class CodedTrack(MediaStreamTrack):
    """The test pattern with each frame's number in its pixels, one frame per :class:`Slots`
    slot.

    Frame ``k`` is rendered (in the executor) before its slot, then held until the slot, so the
    time recorded in ``log`` is the moment aiortc gets it.
    """

    kind = "video"

    def __init__(self, width: int, height: int, fps: int, sweep: int = 0) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.log = _pixelcode.SendLog()
        self._slots = Slots(fps, sweep)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        slot, due = self._slots.next(loop.time())
        frame = await loop.run_in_executor(None, _input_frame, slot, self.width, self.height)
        await asyncio.sleep(max(0.0, due - loop.time()))
        frame.pts = round(slot * self._slots.period * CLOCK_RATE)
        frame.time_base = TIME_BASE
        self.log.record(slot, time.monotonic())
        return frame


def codec_capabilities(codec: str) -> list[Any]:
    """aiortc's video codec capabilities for ``codec`` ("vp8", "h264"), plus retransmission."""
    wanted = f"video/{codec}".lower()
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in codecs if c.mimeType.lower() == wanted]
    if not chosen:
        raise ValueError(f"aiortc cannot send {codec!r}")
    return chosen + [c for c in codecs if c.mimeType.lower() == "video/rtx"]


class RawSession:
    """One producer session. Create, then ``await open()`` on the :class:`RawLoop`."""

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
        codec: str | None = None,
        prompt: str | None = None,
        frame_on_marker: bool = False,
        sweep: int = 0,
    ) -> None:
        query = urlencode({"api_key": api_key, "model": model, "user_agent": "raw-benchmark/1"})
        self._url = f"{realtime_url}/v1/stream?{query}"
        self._prompt = prompt
        self._codec = codec
        self._frame_on_marker = frame_on_marker
        self._on_frame = on_frame
        self.track = CodedTrack(width, height, fps, sweep)
        self.frames_received = 0
        self.negotiated_codec: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._answer: asyncio.Future[str] | None = None
        self._ack: asyncio.Future[None] | None = None
        self._pending_candidates: list[dict[str, Any]] = []
        self._connected = asyncio.Event()

    @property
    def log(self) -> _pixelcode.SendLog:
        """When each numbered frame was handed to aiortc."""
        return self.track.log

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self._url)
        self._ack = loop.create_future()
        self._answer = loop.create_future()
        self._spawn(self._read_signaling())
        if self._prompt is None:
            initial: dict[str, Any] = {"type": "set_image", "image_data": None, "prompt": None}
        else:
            initial = {"type": "prompt", "prompt": self._prompt, "enhance_prompt": False}
        await self._ws.send_str(json.dumps(initial))
        await self._ack

        pc = self._pc = RTCPeerConnection(rtc_configuration([], loopback=True))
        pc.addTrack(self.track)
        if self._codec is not None:
            pc.getTransceivers()[0].setCodecPreferences(codec_capabilities(self._codec))
        if self._frame_on_marker:
            tune_receivers(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._spawn(self._receive(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self._connected.set()

        with host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        await self._ws.send_str(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
        answer = await self._answer
        with host_addresses(["127.0.0.1"]):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for candidate in self._pending_candidates:
            await self._add_candidate(candidate)
        self._pending_candidates.clear()
        await self._connected.wait()
        # Both directions use the answer's first video codec.
        video = SessionDescription.parse(answer).media[0]
        self.negotiated_codec = video.rtp.codecs[0].mimeType if video.rtp.codecs else None

    async def _read_signaling(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            kind = data.get("type")
            if kind in ("set_image_ack", "prompt_ack") and self._ack and not self._ack.done():
                if data.get("success"):
                    self._ack.set_result(None)
                else:
                    self._ack.set_exception(RuntimeError(f"initial state refused: {data}"))
            elif kind == "answer" and self._answer and not self._answer.done():
                self._answer.set_result(data["sdp"])
            elif kind == "ice-candidate":
                if self._pc is not None and self._pc.remoteDescription is not None:
                    await self._add_candidate(data["candidate"])
                else:
                    self._pending_candidates.append(data["candidate"])
            elif kind == "error":
                error = RuntimeError(f"server error: {data.get('error')}")
                for waiter in (self._ack, self._answer):
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(error)

    async def _add_candidate(self, candidate: dict[str, Any]) -> None:
        assert self._pc is not None
        line = str(candidate.get("candidate", "")).removeprefix("candidate:").strip()
        if not line:
            return
        parsed = candidate_from_sdp(line)
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self._pc.addIceCandidate(parsed)

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            decoded = time.monotonic()
            array = frame.to_ndarray(format="bgr24")
            self.frames_received += 1
            self._on_frame(array, decoded, time.monotonic())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._pc is not None:
            await self._pc.close()
        self.track.stop()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2)
