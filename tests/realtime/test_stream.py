"""The transformed stream: consumers, formats, memory bounds, push input, subscribers."""

from __future__ import annotations

import pathlib
import threading
import time

import av
import numpy as np
import pytest
from _support.pictures import picture, still_frames
from _support.sessions import SMALL_LUCY, pushing

from decart_sync import DecartClient, InvalidInputError, SessionClosedError
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, SubscribeOptions
from decart_sync.realtime._frames import FrameInfo
from decart_sync.testing import wait_until


def test_frames_come_at_the_model_size_in_every_access_style(client: DecartClient) -> None:
    with client.realtime.connect(SMALL_LUCY, still_frames()) as session:
        ok, frame = session.read(timeout=10)
        assert ok and frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert session.get_frame(timeout=10).shape == (720, 1280, 3)
        assert session.latest() is not None
        newest = session.latest_info()
        assert newest is not None and newest.frame.shape == (720, 1280, 3)
        assert 0 <= time.monotonic() - newest.received_at < 5
        with session.frames("rgb") as rgb:
            assert rgb.get(timeout=10).shape == (720, 1280, 3)
        with session.frames("av") as raw:
            assert isinstance(raw.get(timeout=10), av.VideoFrame)
        infos = session.frame_infos()
        first, second = next(infos), next(infos)
        assert isinstance(first, FrameInfo) and second.seq > first.seq
        assert second.received_at >= first.received_at
        stats = session.stats()
        assert stats.frames_received > 0 and stats.frames_sent > 0
        assert stats.state == "generating"
    # A clean end hands over what a reader still held (one frame at most), then stops.
    session.read(timeout=1)
    assert session.read(timeout=1) == (False, None)
    with pytest.raises(SessionClosedError):
        session.get_frame(timeout=1)


def test_iterators_end_cleanly_on_disconnect(client: DecartClient) -> None:
    session = client.realtime.connect(SMALL_LUCY, still_frames())
    received: list[int] = []
    finished = threading.Event()

    def consume() -> None:
        for frame in session.frames():
            received.append(frame.shape[0])
        finished.set()  # reached only if iteration ends normally

    thread = threading.Thread(target=consume, name="test-consumer")
    thread.start()
    wait_until(lambda: len(received) >= 3, what="frames")
    session.disconnect()
    assert finished.wait(5)
    thread.join(5)


def test_a_consumer_that_never_reads_holds_one_frame_while_another_keeps_up(
    client: DecartClient,
) -> None:
    with client.realtime.connect(SMALL_LUCY, still_frames()) as session:
        idle = session.frames()
        fifo = session.frames(policy="fifo", maxsize=4)
        fast_count = 0
        with session.frames() as fast:
            for _ in fast:
                fast_count += 1
                if fast_count == 45:
                    break
        assert fast_count == 45
        assert idle.delivered == 0 and idle.dropped >= 40
        assert fifo.dropped >= 40  # kept 4, dropped the rest, oldest first
        got = [fifo.get_info(timeout=1).seq for _ in range(4)]
        assert got == sorted(got)


def test_push_source_with_send(client: DecartClient, emulator: Emulator) -> None:
    with (
        client.realtime.connect(SMALL_LUCY, prompt="noir") as session,
        pushing(session, picture()),
    ):
        assert session.read(timeout=10)[0]
        # noir: the output is grey (channels equal within codec error).
        wait_until(
            lambda: float(np.ptp(session.get_frame(timeout=5).reshape(-1, 3).mean(0))) < 6,
            what="grey output",
        )
        with pytest.raises(InvalidInputError, match="HxWx3"):
            session.send(np.zeros((10, 10), np.uint8))
        with pytest.raises(InvalidInputError, match="uint8"):
            session.send(np.zeros((10, 10, 3), np.float32))


def test_bad_frames_from_an_iterable_become_error_events(client: DecartClient) -> None:
    good = picture()

    def frames():  # type: ignore[no-untyped-def]
        yield good
        yield np.zeros((5, 5), np.uint8)
        while True:
            yield good

    errors: list[Exception] = []
    with client.realtime.connect(SMALL_LUCY, frames()) as session:
        session.on("error", errors.append)
        wait_until(lambda: errors, what="an error event")
        assert isinstance(errors[0], InvalidInputError)
        assert "HxWx3" in str(errors[0])
        assert session.read(timeout=10)[0]  # the session keeps going


def test_subscriber_sees_the_producer_and_cannot_change_it(
    client: DecartClient, emulator: Emulator
) -> None:
    with client.realtime.connect(SMALL_LUCY, still_frames(), prompt="negative") as producer:
        token = producer.subscribe_token
        assert token
        viewer = RealtimeClient.subscribe(
            base_url=emulator.url,
            api_key=emulator.api_key,
            options=SubscribeOptions(token=token),
        )
        try:
            assert viewer.is_connected()
            assert viewer.session_id == producer.session_id
            ok, seen = viewer.read(timeout=10)
            assert ok and seen.shape == (720, 1280, 3)
            mine = producer.get_frame(timeout=10)
            assert abs(float(seen.mean()) - float(mine.mean())) < 12
            assert not hasattr(viewer, "set_prompt")
            wait_until(lambda: emulator.sessions()[0].subscribers == 1, what="subscriber count")
            assert emulator.sessions()[0].prompt == "negative"
        finally:
            viewer.disconnect()
        assert producer.is_connected()


def test_malformed_subscribe_token_is_invalid_input(emulator: Emulator) -> None:
    with pytest.raises(InvalidInputError, match="subscribe token"):
        RealtimeClient.subscribe(emulator.url, emulator.api_key, SubscribeOptions(token="nope"))


def test_fps_in_and_out_are_reported(client: DecartClient) -> None:
    """Both rates are measured, and neither exceeds the model's 30 fps by more than a rate
    meter's error; how close to 30 they come depends on the machine's load (benchmarks/)."""
    with client.realtime.connect(SMALL_LUCY, still_frames()) as session:
        session.stats()
        with session.frames() as frames:
            first = frames.get_info(timeout=10).received_at
            # A rate needs frames spread over a good part of its window: read for a second of
            # stream, however long the machine takes to deliver it.
            wait_until(
                lambda: frames.get_info(timeout=10).received_at - first > 1.0,
                timeout=30,
                what="a second of frames",
            )
        stats = session.stats()
        assert 0 < stats.fps_out < 40
        assert 0 < stats.fps_in < 40


def test_an_aiortc_track_and_a_video_file_are_accepted_as_input(
    client: DecartClient, tmp_path: pathlib.Path
) -> None:
    from aiortc import VideoStreamTrack

    with client.realtime.connect(SMALL_LUCY, VideoStreamTrack()) as session:
        assert session.read(timeout=10)[0]

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 176, "yuv420p"
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(picture(), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with client.realtime.connect(SMALL_LUCY, str(path)) as session:
        assert session.read(timeout=10)[0]
        wait_until(lambda: session.stats().frames_sent >= 20, what="the clip to play")
