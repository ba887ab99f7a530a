"""The current media transport, ``livekit`` (protocol sections 3, 4 and 9): the control
WebSocket asks for a room, and the video travels through a LiveKit room that the ``livekit``
SDK joins.

A :class:`LiveKitMedia` is one connection's media, a sibling of ``_webrtc.WebRTCMedia``:

- a producer sends ``livekit_join`` (with ``passthrough`` when it has no initial state) and, as
  its own frame at once, its initial state, as Decart's JS client does; it waits for
  ``livekit_room_info`` (15 s, a timer the first ``queue_position`` stops) and for the state's
  acknowledgement, joins the room, publishes its source as a video track, and takes the video
  of the ``inference-server-*`` participant;
- a viewer joins with credentials fetched from ``/watch-stream`` and publishes nothing;
- a server that does not know ``livekit_join`` says so with an ``error``: the producer carries
  on with the legacy offer/answer on the same WebSocket (``auto`` only).

The ``livekit`` SDK runs on the loop it is created on, which is the SDK's loop thread, so every
room callback arrives there. Its frames are converted natively (I420 planes, no Python pixel
loops) and handed on as the same ``av.VideoFrame`` s the legacy transport delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import av
import numpy as np
import requests
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from livekit import rtc

from decart_sync import _protocol
from decart_sync._redact import get_logger, redact, register_secret
from decart_sync.errors import (
    DecartTimeoutError,
    InvalidAPIKeyError,
    SessionClosedError,
    WebRTCError,
)
from decart_sync.realtime._transports import LegacyServer

if TYPE_CHECKING:
    from decart_sync.realtime._connection import AckedState, Connection

_log = get_logger(__name__)

INFERENCE_PREFIX: Final = "inference-server-"
#: How long a producer waits for its room before the service says anything (section 7).
ROOM_INFO_TIMEOUT: Final = 15.0
_CODECS: Final = {
    "h264": rtc.VideoCodec.H264,
    "vp8": rtc.VideoCodec.VP8,
    "vp9": rtc.VideoCodec.VP9,
    "av1": rtc.VideoCodec.AV1,
}
DEFAULT_CODEC: Final = "h264"
_FETCH_TIMEOUT: Final = 15.0
#: Decoded frames the room's video stream may hold for the loop (about 0.1 s at 30 fps).
_STREAM_CAPACITY: Final = 3
_I420: Final = rtc.VideoBufferType.I420

#: Fetches a viewer's room credentials (``POST /watch-stream/{room}``), fresh on every connect.
ViewerTicket = Callable[[], Awaitable[_protocol.LiveKitRoomInfoMessage]]


def watch_stream(realtime_base: str, room_name: str, *, api_key: str, agent: str) -> ViewerTicket:
    """How a viewer gets into ``room_name``: ``POST /watch-stream/{room}`` for fresh
    credentials, again on every connect, since a LiveKit access token expires (section 4)."""
    url = _protocol.watch_stream_url(realtime_base, room_name)

    def fetch() -> _protocol.LiveKitRoomInfoMessage:
        try:
            response = requests.post(
                url, headers={"x-api-key": api_key, "User-Agent": agent}, timeout=_FETCH_TIMEOUT
            )
        except requests.RequestException as exc:
            raise WebRTCError(f"could not ask {url} for the room: {redact(str(exc))}") from None
        if response.status_code in (401, 403):
            raise InvalidAPIKeyError(f"the server refused the API key for {url}")
        if response.status_code == 404:
            raise SessionClosedError(f"no live session in room {room_name!r} (HTTP 404)")
        if not 200 <= response.status_code < 300:
            raise WebRTCError(
                f"watch-stream failed: HTTP {response.status_code}: {redact(response.text[:500])}"
            )
        try:
            data = _protocol.parse_json(response.content)
            return _protocol.LiveKitRoomInfoMessage(
                str(data["livekit_url"]),
                str(data["token"]),
                str(data["room_name"]),
                str(data.get("session_id") or ""),
            )
        except (_protocol.ProtocolViolation, KeyError, TypeError):
            raise WebRTCError("watch-stream answered with unexpected JSON") from None

    async def ticket() -> _protocol.LiveKitRoomInfoMessage:
        return await asyncio.get_running_loop().run_in_executor(None, fetch)

    return ticket


def is_livekit_join_refusal(text: str) -> bool:
    lowered = text.lower()
    return "livekit_join" in lowered and ("unknown" in lowered or "unsupported" in lowered)


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


# LiveKit's video presets (livekit's Rust SDK, options.rs), as (width, max bitrate in bit/s):
# 16:9, then 4:3.
_PRESETS_16_9: Final = (
    (160, 90_000),
    (320, 160_000),
    (384, 180_000),
    (640, 450_000),
    (960, 800_000),
    (1280, 1_700_000),
    (1920, 3_000_000),
    (2560, 5_000_000),
    (3840, 8_000_000),
)
_PRESETS_4_3: Final = (
    (160, 80_000),
    (240, 100_000),
    (320, 150_000),
    (480, 225_000),
    (640, 300_000),
    (720, 450_000),
    (960, 1_500_000),
    (1440, 2_500_000),
    (1920, 3_500_000),
)
_BITRATE_FACTOR: Final = {"vp9": 0.85, "av1": 0.7}


def publish_encoding(width: int, height: int, fps: int, codec: str) -> rtc.VideoEncoding:
    """The published track's encoding: the bitrate LiveKit picks for the size, at the model's
    frame rate.

    Left to pick both, LiveKit also takes its preset's frame rate, which is below 30 for most
    sizes under 961 pixels (25 fps for 640x352), and libwebrtc then drops the frames above it
    before encoding: a 640x352@30 model received 83 % of the frames sent. The bitrate is
    chosen as LiveKit chooses it (``compute_appropriate_encoding``): the first preset wider than
    the picture's long side, or the largest.
    """
    long_side, short_side = max(width, height), max(1, min(width, height))
    aspect = long_side / short_side
    presets = _PRESETS_16_9 if abs(aspect - 16 / 9) < abs(aspect - 4 / 3) else _PRESETS_4_3
    bitrate = next((rate for side, rate in presets if side > long_side), presets[-1][1])
    bitrate = int(bitrate * _BITRATE_FACTOR.get(codec, 1.0))
    return rtc.VideoEncoding(max_bitrate=bitrate, max_framerate=float(fps))


def _i420_planes(width: int, height: int) -> tuple[tuple[int, int], ...]:
    """(width, height) of the Y, U and V planes of an I420 picture, in their order in memory."""
    chroma = ((width + 1) // 2, (height + 1) // 2)
    return ((width, height), chroma, chroma)


def _plane_pixels(plane: Any, width: int, height: int) -> np.ndarray[Any, Any]:
    """A view of one plane of an ``av.VideoFrame``, without the padding at its rows' ends."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def _as_av_frame(frame: rtc.VideoFrame) -> av.VideoFrame:
    """A received I420 frame as the ``av.VideoFrame`` the hub takes, without copying its pixels:
    the frame views the buffer the ``livekit`` SDK copied them into, and keeps it alive."""
    width, height = frame.width, frame.height
    data = np.frombuffer(frame.data, np.uint8)
    if width % 2 == 0 and height % 2 == 0:
        # I420 is the layout PyAV's yuv420p takes as one (height * 3/2, width) array.
        planes = data[: width * height * 3 // 2].reshape(height * 3 // 2, width)
        return av.VideoFrame.from_numpy_buffer(planes, format="yuv420p")
    # Odd sizes round the chroma planes up, which that layout cannot say: copy plane by plane.
    picture = av.VideoFrame(width, height, "yuv420p")
    offset = 0
    for plane, (w, h) in zip(picture.planes, _i420_planes(width, height), strict=True):
        _plane_pixels(plane, w, h)[...] = data[offset : offset + w * h].reshape(h, w)
        offset += w * h
    return picture


class _I420Packer:
    """Packs a yuv420p ``av.VideoFrame`` into the contiguous I420 buffer ``capture_frame`` reads.

    One copy per frame, into a buffer reused for every frame: ``capture_frame`` copies the pixels
    into libwebrtc's own buffer before it returns. (``to_ndarray()`` allocates a new array per
    frame, and ``rtc.VideoFrame`` copies a multi-dimensional array's ``memoryview`` once more.)
    """

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None
        self._buffer = bytearray()
        self._planes: list[np.ndarray[Any, Any]] = []

    def pack(self, frame: av.VideoFrame) -> rtc.VideoFrame:
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        width, height = frame.width, frame.height
        if self._size != (width, height):
            self._layout(width, height)
        for plane, target in zip(frame.planes, self._planes, strict=True):
            rows, columns = target.shape
            np.copyto(target, _plane_pixels(plane, columns, rows))
        return rtc.VideoFrame(width, height, _I420, self._buffer)

    def _layout(self, width: int, height: int) -> None:
        sizes = _i420_planes(width, height)
        self._buffer = bytearray(sum(w * h for w, h in sizes))
        whole = np.frombuffer(self._buffer, np.uint8)
        self._planes, offset = [], 0
        for w, h in sizes:
            self._planes.append(whole[offset : offset + w * h].reshape(h, w))
            offset += w * h
        self._size = (width, height)


class LiveKitMedia:
    """The LiveKit room of one connection."""

    name: Final = "livekit"

    def __init__(self, connection: Connection, viewer_ticket: ViewerTicket | None = None) -> None:
        self._connection = connection
        self._viewer_ticket = viewer_ticket
        self._room: rtc.Room | None = None
        self._source: rtc.VideoSource | None = None
        self._local_track: MediaStreamTrack | None = None
        self._streams: list[rtc.VideoStream] = []
        self._room_info: asyncio.Future[_protocol.LiveKitRoomInfoMessage] | None = None
        self._room_timer: asyncio.TimerHandle | None = None
        self._closing = False

    # ------------------------------------------------------------------ opening

    async def connect(self, initial: AckedState | None) -> None:
        """Raises :class:`LegacyServer` when the server does not know ``livekit_join``."""
        connection = self._connection
        if connection.role == "viewer":
            assert self._viewer_ticket is not None
            info = await self._viewer_ticket()
        else:
            info = await self._ask_for_a_room(initial)
        register_secret(info.token)
        connection.room_assigned(info)
        await self._join(info)

    async def _ask_for_a_room(self, initial: AckedState | None) -> _protocol.LiveKitRoomInfoMessage:
        connection = self._connection
        passthrough = initial is None or initial.is_passthrough
        self._room_info = connection.new_waiter()
        await connection.send(_protocol.LiveKitJoinMessage(passthrough))
        # The initial state goes out at once, as its own message; the room can be joined while
        # its acknowledgement is on the way, and the connection opens once both are done.
        state_ack = None if passthrough else asyncio.ensure_future(connection.establish(initial))
        if state_ack is not None:
            # When the connect fails, this wait fails with it: the connect's error says so.
            state_ack.add_done_callback(_consume_outcome)
        try:
            info = await self._wait_for_room()
            if state_ack is not None:
                await connection.race(state_ack)
        except BaseException:
            if state_ack is not None:
                state_ack.cancel()
            raise
        return info

    async def _wait_for_room(self) -> _protocol.LiveKitRoomInfoMessage:
        assert self._room_info is not None
        # The service answers within 15 s, or starts saying where the session is queued; the
        # first queue_position stops this timer, and the connect's own timeout bounds the rest.
        self._room_timer = asyncio.get_running_loop().call_later(
            ROOM_INFO_TIMEOUT, self._room_overdue
        )
        try:
            info: _protocol.LiveKitRoomInfoMessage = await self._connection.race(self._room_info)
        finally:
            self._room_timer.cancel()
        return info

    def _room_overdue(self) -> None:
        if self._room_info is not None and not self._room_info.done():
            self._room_info.set_exception(
                DecartTimeoutError(
                    f"the server handed out no LiveKit room within {ROOM_INFO_TIMEOUT:g}s"
                )
            )

    async def _join(self, info: _protocol.LiveKitRoomInfoMessage) -> None:
        connection = self._connection
        room = rtc.Room(loop=asyncio.get_running_loop())
        self._room = room
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("disconnected", self._on_disconnected)
        try:
            await room.connect(info.livekit_url, info.token, rtc.RoomOptions(auto_subscribe=True))
        except rtc.ConnectError as exc:
            raise WebRTCError(f"could not join the LiveKit room: {exc.message}") from None
        if connection.role == "producer":
            await self._publish(room)
        connection.media_connected()

    async def _publish(self, room: rtc.Room) -> None:
        connection = self._connection
        model = connection.plan.model
        assert model is not None
        self._source = rtc.VideoSource(model.width, model.height)
        track = rtc.LocalVideoTrack.create_video_track("decart-sync", self._source)
        codec = (connection.plan.video_codec or DEFAULT_CODEC).lower()
        # One layer at the model's size: the model takes one input, and a simulcast's lower
        # layers would only cost encoding time on this machine.
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA,
            video_codec=_CODECS[codec],
            simulcast=False,
            video_encoding=publish_encoding(model.width, model.height, model.fps, codec),
        )
        await room.local_participant.publish_track(track, options)
        self._local_track = connection.open_source_track()
        connection.spawn(self._pump(self._local_track, self._source), "publish")

    # ------------------------------------------------------------------ messages

    def on_message(self, message: _protocol.ServerMessage) -> bool:
        if isinstance(message, _protocol.LiveKitRoomInfoMessage):
            if self._room_info is not None and not self._room_info.done():
                self._room_info.set_result(message)
            return True
        if isinstance(message, _protocol.QueuePositionMessage):
            if self._room_timer is not None:
                self._room_timer.cancel()
            self._connection.queue_position(message)
            return True
        if (
            isinstance(message, _protocol.ErrorMessage)
            and self._room_info is not None
            and not self._room_info.done()
            and is_livekit_join_refusal(message.error)
        ):
            self._room_info.set_exception(LegacyServer(message.error))
            return True
        return isinstance(message, _protocol.SessionIdMessage)  # a legacy message: not ours

    # ------------------------------------------------------------------ media

    def _on_track_subscribed(
        self, track: rtc.Track, publication: Any, participant: rtc.RemoteParticipant
    ) -> None:
        # Only the model's output counts: any other participant (a viewer) is ignored.
        if not participant.identity.startswith(INFERENCE_PREFIX):
            return
        if track.kind != rtc.TrackKind.KIND_VIDEO:
            return
        # A bounded queue: if the loop falls behind, the oldest decoded frames go (the hub
        # keeps consumers' buffers), rather than hundreds of megabytes queueing unread.
        stream = rtc.VideoStream(
            track,
            loop=asyncio.get_running_loop(),
            capacity=_STREAM_CAPACITY,
            format=_I420,
        )
        self._streams.append(stream)
        self._connection.spawn(self._drain(stream), "read-room-video")

    async def _drain(self, stream: rtc.VideoStream) -> None:
        async for event in stream:
            self._connection.deliver_frame(_as_av_frame(event.frame))

    async def _pump(self, track: MediaStreamTrack, source: rtc.VideoSource) -> None:
        """The session's source, paced and converted as for any transport, into the room."""
        packer = _I420Packer()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            seconds = frame.time or 0.0  # the pacer's stamp, on the track's clock
            source.capture_frame(packer.pack(frame), timestamp_us=int(seconds * 1_000_000))

    def _on_disconnected(self, reason: Any = None) -> None:
        if not self._closing:
            self._connection.media_lost(WebRTCError(f"the LiveKit room disconnected ({reason})"))

    async def round_trip_time(self) -> float | None:
        return None  # the room's RTCP statistics are not exposed by the livekit SDK here

    async def close(self) -> None:
        self._closing = True
        if self._room_info is not None and not self._room_info.done():
            self._room_info.cancel()
        if self._local_track is not None:
            self._local_track.stop()
        for stream in self._streams:
            with contextlib.suppress(Exception):
                await stream.aclose()
        self._streams.clear()
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(Exception):
                await room.disconnect()
        source, self._source = self._source, None
        if source is not None:
            with contextlib.suppress(Exception):
                await source.aclose()
