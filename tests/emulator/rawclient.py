"""A minimal realtime client for testing the emulator, independent of the SDK.

Signaling is websocket-client with hand-written JSON (not the SDK's message classes), read by a
background thread into a list the test can wait on. Media is plain aiortc on a loop thread of its
own: a synthetic test pattern goes out, received frames are counted and the latest one kept.
Nothing here is sent to any address but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

import av
import numpy as np
import websocket
from _support.pictures import pattern
from aiortc import (
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from decart_sync._ice import host_addresses, rtc_configuration

T = TypeVar("T")

WAIT = 20.0  # default deadline for anything the emulator should do promptly
INPUT_SIZE = (320, 180)
INPUT_FPS = 15


class MediaLoop:
    """An asyncio loop on its own thread, shared by the raw clients of a test session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="raw-media", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_leftovers() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class PatternTrack(MediaStreamTrack):
    """Sends the test pattern at a modest rate."""

    kind = "video"

    def __init__(self, picture: np.ndarray, fps: int = INPUT_FPS) -> None:
        super().__init__()
        self.picture = picture
        self.fps = fps
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        target = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, target - loop.time()))
        frame = av.VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts = self._count * (90_000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        self._count += 1
        return frame


class Closed:
    """How the server closed the WebSocket: ``code`` is None for a connection cut without a
    closing handshake."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Closed({self.code}, {self.reason!r})"


class RawClient:
    """One signaling WebSocket (producer or viewer) and, once :meth:`negotiate` ran, one peer
    connection."""

    def __init__(self, url: str, media: MediaLoop, origin: str | None = None) -> None:
        self.media = media
        headers = [f"Origin: {origin}"] if origin else []
        self.ws = websocket.create_connection(
            url, timeout=WAIT, header=headers, suppress_origin=True
        )
        self.messages: list[dict[str, Any]] = []
        self.closed: Closed | None = None
        self._changed = threading.Condition()
        self.pc: RTCPeerConnection | None = None
        self.frames_received = 0
        self.received_pts: list[int] = []
        self._consumers: list[asyncio.Future[None]] = []  # our tasks on the media loop
        self.latest_frame: av.VideoFrame | None = None
        self._reader = threading.Thread(target=self._read, name="raw-signaling", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ URLs

    @staticmethod
    def producer_url(
        base: str, api_key: str | None, model: str | None = "lucy-2.1", **extra: str
    ) -> str:
        query: dict[str, str] = {}
        if api_key is not None:
            query["api_key"] = api_key
        if model is not None:
            query["model"] = model
        query.update(extra)
        query["user_agent"] = "raw-test-client/1"
        return f"{base}/v1/stream?{urlencode(query)}"

    @staticmethod
    def viewer_url(base: str, session: dict[str, Any], api_key: str) -> str:
        query = {
            "IP": session["server_ip"],
            "port": str(session["server_port"]),
            "api_key": api_key,
            "user_agent": "raw-test-client/1",
        }
        return f"{base}/subscribe/{session['session_id']}?{urlencode(query)}"

    # ------------------------------------------------------------------ signaling

    def _read(self) -> None:
        while True:
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
            except Exception:
                self._set_closed(Closed(None, "connection lost"))
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(frame.data.decode())
                with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
                if self.pc is not None and message.get("type") == "ice-candidate":
                    self.media.loop.call_soon_threadsafe(self._add_remote_candidate, message)
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data or b""
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                self._set_closed(Closed(code, data[2:].decode(errors="replace")))
                return

    def _set_closed(self, closed: Closed) -> None:
        with self._changed:
            if self.closed is None:
                self.closed = closed
            self._changed.notify_all()

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out waiting for {what or predicate}; got {self.types()}, "
                        f"closed={self.closed}"
                    )
                self._changed.wait(min(remaining, 0.05))

    def types(self) -> list[str]:
        return [m.get("type", "?") for m in list(self.messages)]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == kind]

    def expect(self, kind: str, count: int = 1, timeout: float = WAIT) -> dict[str, Any]:
        """Wait until ``count`` messages of ``kind`` arrived; return the last of them."""
        self.wait(lambda: len(self.of_type(kind)) >= count, timeout, f"{count} x {kind}")
        return self.of_type(kind)[count - 1]

    def request(self, message: dict[str, Any], reply: str, timeout: float = WAIT) -> dict[str, Any]:
        """Send ``message`` and return the next ``reply`` message."""
        count = len(self.of_type(reply)) + 1
        self.send(message)
        return self.expect(reply, count, timeout)

    def wait_closed(self, timeout: float = WAIT) -> Closed:
        self.wait(lambda: self.closed is not None, timeout, "close")
        assert self.closed is not None
        return self.closed

    def set_prompt(self, prompt: str, enhance: bool = True) -> dict[str, Any]:
        return self.request(
            {"type": "prompt", "prompt": prompt, "enhance_prompt": enhance}, "prompt_ack"
        )

    def set_image(self, image_data: str | None, **fields: Any) -> dict[str, Any]:
        return self.request(
            {"type": "set_image", "image_data": image_data, **fields}, "set_image_ack"
        )

    # ------------------------------------------------------------------ media

    def negotiate(
        self,
        picture: np.ndarray | None = None,
        *,
        viewer: bool = False,
        codec: str | None = None,
        trickle: bool = True,
        browser: bool = False,
    ) -> dict[str, Any]:
        """Make the offer, send it, apply the answer; returns the ``answer`` message. With
        ``browser``, the candidates are trickled as a browser's JS client sends them."""
        offer_sdp = self.media.run(self._make_offer(picture, viewer, codec))
        self.send({"type": "offer", "sdp": offer_sdp})
        if trickle:
            self._send_own_candidates(browser=browser)
        answer = self.expect("answer")
        self.media.run(self._apply_answer(answer["sdp"]))
        return answer

    async def _make_offer(self, picture: np.ndarray | None, viewer: bool, codec: str | None) -> str:
        pc = RTCPeerConnection(rtc_configuration([], loopback=True))
        self.pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._consumers.append(asyncio.ensure_future(self._consume(track)))

        if viewer:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
        else:
            transceiver = pc.addTransceiver(
                PatternTrack(pattern(*INPUT_SIZE) if picture is None else picture), "sendrecv"
            )
            if codec is not None:
                codecs = RTCRtpSender.getCapabilities("video").codecs
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType.lower() in (f"video/{codec}", "video/rtx")]
                )
        with host_addresses(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp  # type: ignore[no-any-return]

    def _send_own_candidates(self, *, browser: bool = False, unplaced: bool = False) -> None:
        """Trickle the offer's candidates. ``browser``: as ``JSON.stringify`` of a browser's
        ``RTCIceCandidate`` (with ``usernameFragment``), then the end-of-candidates ``null``.
        ``unplaced``: with null ``sdpMid`` and ``sdpMLineIndex``."""
        assert self.pc is not None
        lines = self.pc.localDescription.sdp.splitlines()
        mid, index, ufrag = None, -1, None
        for line in lines:
            if line.startswith("m="):
                index += 1
            elif line.startswith("a=mid:"):
                mid = line[len("a=mid:") :]
            elif line.startswith("a=ice-ufrag:"):
                ufrag = line[len("a=ice-ufrag:") :]
            elif line.startswith("a=candidate:"):
                candidate: dict[str, Any] = {
                    "candidate": line[2:],
                    "sdpMid": None if unplaced else mid or str(index),
                    "sdpMLineIndex": None if unplaced else index,
                }
                if browser:
                    candidate["usernameFragment"] = ufrag
                self.send({"type": "ice-candidate", "candidate": candidate})
        if browser:
            self.send({"type": "ice-candidate", "candidate": None})

    async def _apply_answer(self, sdp: str) -> None:
        assert self.pc is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        for message in self.of_type("ice-candidate"):
            self._add_remote_candidate(message)

    def _add_remote_candidate(self, message: dict[str, Any]) -> None:
        pc = self.pc
        if pc is None or pc.remoteDescription is None:
            return  # added by _apply_answer once the answer is in
        raw = message["candidate"]
        candidate: RTCIceCandidate = candidate_from_sdp(raw["candidate"].split(":", 1)[1])
        candidate.sdpMid = raw["sdpMid"]
        candidate.sdpMLineIndex = raw["sdpMLineIndex"]
        self._consumers.append(asyncio.ensure_future(pc.addIceCandidate(candidate)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            with self._changed:
                self.latest_frame = frame
                self.received_pts.append(frame.pts)
                self.frames_received += 1
                self._changed.notify_all()

    def wait_frames(self, count: int, timeout: float = WAIT) -> av.VideoFrame:
        """Wait for ``count`` more frames; return the latest."""
        target = self.frames_received + count
        self.wait(lambda: self.frames_received >= target, timeout, f"{count} more frames")
        assert self.latest_frame is not None
        return self.latest_frame

    def latest_rgb(self, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
        assert self.latest_frame is not None
        frame = self.latest_frame.reformat(width=size[0], height=size[1], format="rgb24")
        return frame.to_ndarray()

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "none"

    # ------------------------------------------------------------------ cleanup

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=2)
        if self.pc is not None:
            self.media.run(self._close_media())
        self._reader.join(5)

    async def _close_media(self) -> None:
        assert self.pc is not None
        await self.pc.close()
        # A receiver that never started never ends its track: stop reading it ourselves.
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def solid_png(rgb: tuple[int, int, int], width: int = 64, height: int = 48) -> bytes:
    """A PNG file of one solid colour, written by hand (zlib + CRCs)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP request with the standard library; returns (status, decoded JSON body)."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
