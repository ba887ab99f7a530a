"""The MJPEG broadcaster, as a web app uses it: viewers attach and leave, frames are encoded
once and shared, nothing runs when nobody watches, abandoned viewers are dropped."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from _sink_helpers import HubSession, thread_alive
from _support.decoding import decode_image
from _support.pictures import HEIGHT, WIDTH
from _support.sessions import SMALL_LUCY

from decart_sync import DecartClient
from decart_sync.errors import InvalidInputError
from decart_sync.media import test_pattern
from decart_sync.media.mjpeg import MjpegBroadcaster
from decart_sync.testing import wait_until

PART = re.compile(
    rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n(.*)\r\n\Z", re.S
)


def jpeg_of(part: bytes) -> bytes:
    match = PART.match(part)
    assert match is not None, part[:80]
    length, jpeg = int(match[1]), match[2]
    assert len(jpeg) == length
    return jpeg


class Pull:
    """A viewer pulled from its own thread, as a WSGI server would, keeping what it got. With
    ``limit``, it closes the stream after that many parts, as a server does when the client
    goes away."""

    def __init__(self, stream: Iterator[bytes], name: str, limit: int | None = None) -> None:
        self.stream = stream
        self.limit = limit
        self.parts: list[bytes] = []
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._pull, name=name, daemon=True)
        self.thread.start()

    def _pull(self) -> None:
        for part in self.stream:
            self.parts.append(part)
            if len(self.parts) == self.limit:
                self.stream.close()  # type: ignore[attr-defined]
        self.ended.set()


@pytest.fixture
def session() -> HubSession:
    return HubSession()


@pytest.fixture
def broadcaster(session: HubSession) -> Iterator[MjpegBroadcaster]:
    b = MjpegBroadcaster(session, quality=80)
    yield b
    b.close()


def test_a_viewer_gets_complete_multipart_jpeg_parts(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    assert broadcaster.content_type == "multipart/x-mixed-replace; boundary=frame"
    stream = broadcaster.viewer()
    viewer = Pull(stream, "viewer-1")
    wait_until(lambda: broadcaster.viewers == 1 and session.consumers == 1)
    session.publish()
    wait_until(lambda: len(viewer.parts) == 1, what="the first part")
    image = decode_image(jpeg_of(viewer.parts[0]))
    assert image.shape == (HEIGHT, WIDTH, 3)


def test_each_frame_is_encoded_once_whatever_the_number_of_viewers(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    viewers = [Pull(broadcaster.viewer(), f"viewer-{i}") for i in range(3)]
    wait_until(lambda: broadcaster.viewers == 3 and session.consumers == 1)
    for n in range(1, 11):
        session.publish()
        wait_until(lambda n=n: all(len(v.parts) == n for v in viewers), what=f"frame {n}")
    assert broadcaster.frames_encoded == 10
    delivered = sum(len(v.parts) for v in viewers)
    assert delivered == 30
    # Every viewer got the very same bytes for each frame: shared, not re-encoded.
    for parts in zip(*(v.parts for v in viewers), strict=True):
        assert parts[0] is parts[1] is parts[2]


def test_nothing_is_encoded_while_nobody_watches(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    for _ in range(5):
        session.publish()
    assert broadcaster.frames_encoded == 0
    assert not broadcaster.encoding and session.consumers == 0
    assert not thread_alive("decart-mjpeg")

    viewer = Pull(broadcaster.viewer(), "viewer", limit=2)
    wait_until(lambda: session.consumers == 1, what="the encoder to start")
    assert thread_alive("decart-mjpeg")
    session.publish()
    wait_until(lambda: len(viewer.parts) == 1)
    session.publish()
    assert viewer.ended.wait(5)  # it took its second part and left
    wait_until(lambda: broadcaster.viewers == 0 and not broadcaster.encoding, what="idle")
    wait_until(lambda: not thread_alive("decart-mjpeg"), what="the encoder thread to end")
    encoded = broadcaster.frames_encoded
    for _ in range(5):
        session.publish()
    assert broadcaster.frames_encoded == encoded == 2
    assert session.consumers == 0


def test_a_viewer_that_stops_pulling_is_dropped(session: HubSession) -> None:
    broadcaster = MjpegBroadcaster(session, stale_after=0.3)
    try:
        stream = broadcaster.viewer()
        first = threading.Thread(target=lambda: next(stream))
        first.start()
        wait_until(lambda: session.consumers == 1)
        session.publish()
        first.join(5)
        # The response was abandoned without being closed: nobody asks for the next part.
        wait_until(lambda: broadcaster.viewers == 0, timeout=5, what="the stale viewer to go")
        wait_until(lambda: not broadcaster.encoding, what="the encoder to stop")
        assert session.consumers == 0
        with pytest.raises(StopIteration):  # if it ever comes back, its stream is over
            next(stream)
    finally:
        broadcaster.close()


def test_close_ends_every_viewer(session: HubSession, broadcaster: MjpegBroadcaster) -> None:
    viewers = [Pull(broadcaster.viewer(), f"viewer-{i}") for i in range(2)]
    wait_until(lambda: broadcaster.viewers == 2)
    broadcaster.close()
    for viewer in viewers:
        assert viewer.ended.wait(5), "a viewer's iteration did not end"
    wait_until(lambda: not broadcaster.encoding and session.consumers == 0)
    assert list(broadcaster.viewer()) == []  # new viewers end at once
    assert broadcaster.latest_jpeg(timeout=0) is None


def test_the_end_of_the_session_ends_every_viewer(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    viewer = Pull(broadcaster.viewer(), "viewer")
    wait_until(lambda: session.consumers == 1)
    session.hub.close()
    assert viewer.ended.wait(5)
    assert broadcaster.closed and broadcaster.error is None


def test_async_viewers_share_the_same_frames(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    async def watch(count: int) -> list[bytes]:
        parts = []
        async for part in broadcaster.async_viewer():
            parts.append(part)
            if len(parts) == count:
                break
        return parts

    async def main() -> tuple[list[bytes], list[bytes], list[bytes]]:
        tasks = [asyncio.ensure_future(watch(3)) for _ in range(2)]
        ended = asyncio.ensure_future(watch(100))
        for n in range(3):
            while broadcaster.viewers < 3 or session.consumers < 1:
                await asyncio.sleep(0.005)
            session.publish()
            while broadcaster.frames_encoded <= n:
                await asyncio.sleep(0.005)
        first, second = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        broadcaster.close()  # ends the third one
        return first, second, await asyncio.wait_for(ended, 10)

    first, second, third = asyncio.run(main())
    assert len(first) == len(second) == 3
    assert [jpeg_of(p) for p in first] == [jpeg_of(p) for p in second]
    assert len(third) <= 3
    assert broadcaster.frames_encoded == 3
    wait_until(lambda: broadcaster.viewers == 0)


def test_snapshots_encode_each_frame_once(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    assert broadcaster.latest_jpeg(timeout=0) is None  # nothing received yet
    session.publish()
    jpeg = broadcaster.latest_jpeg(timeout=5)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    assert broadcaster.latest_jpeg() is jpeg  # same frame: no second encode
    assert broadcaster.frames_encoded == 1
    session.publish()
    newer = broadcaster.latest_jpeg()
    assert newer is not None and newer != jpeg
    assert broadcaster.frames_encoded == 2
    assert not broadcaster.encoding  # snapshots never start the streaming thread


def test_a_snapshot_waits_for_the_first_frame(
    session: HubSession, broadcaster: MjpegBroadcaster
) -> None:
    got: list[bytes | None] = []
    waiter = threading.Thread(target=lambda: got.append(broadcaster.latest_jpeg(timeout=10)))
    waiter.start()
    wait_until(lambda: session.consumers == 1, what="the snapshot to wait")
    session.publish()
    waiter.join(10)
    assert got and got[0] is not None


def test_max_fps_limits_encoding(session: HubSession) -> None:
    broadcaster = MjpegBroadcaster(session, max_fps=2)
    try:
        viewer = Pull(broadcaster.viewer(), "viewer")
        wait_until(lambda: session.consumers == 1)
        session.publish()
        wait_until(lambda: len(viewer.parts) == 1)
        for _ in range(10):  # a burst right after an encode: at most one more before 0.5 s
            session.publish()
        wait_until(lambda: len(viewer.parts) == 2, what="the next allowed encode")
        assert broadcaster.frames_encoded == 2
    finally:
        broadcaster.close()


def test_bad_arguments_are_clear_errors(session: HubSession) -> None:
    with pytest.raises(InvalidInputError, match="frames"):
        MjpegBroadcaster(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="quality"):
        MjpegBroadcaster(session, quality=101)
    with pytest.raises(InvalidInputError, match="stale_after"):
        MjpegBroadcaster(session, stale_after=0)


def test_a_live_session_streams_as_mjpeg(client: DecartClient) -> None:
    with (
        client.realtime.connect(
            SMALL_LUCY, test_pattern(width=WIDTH, height=HEIGHT), prompt="negative", timeout=20
        ) as live,
        MjpegBroadcaster(live) as broadcaster,
    ):
        stream = broadcaster.viewer()
        images = [decode_image(jpeg_of(next(stream))) for _ in range(3)]
        stream.close()  # type: ignore[attr-defined]
        assert all(image.shape == (720, 1280, 3) for image in images)
        assert not np.array_equal(images[0], images[2])  # the picture moves
        wait_until(lambda: not broadcaster.encoding)
