"""Recording the transformed stream to MP4: real timestamps, playable files, clean endings."""

from __future__ import annotations

import pathlib
import threading
import time

import av
import numpy as np
import pytest
from _sink_helpers import HubSession, pattern_frame, thread_alive
from _support.decoding import decode_video
from _support.sessions import SMALL_LUCY

from decart_sync import DecartClient
from decart_sync.errors import InvalidInputError, SessionClosedError
from decart_sync.media import render_test_pattern, test_pattern
from decart_sync.media.recorder import Recorder, SessionRecorder, record
from decart_sync.testing import wait_until


def test_timestamps_follow_arrival_times_not_a_fixed_rate(tmp_path: pathlib.Path) -> None:
    # 1 s at 30 fps, a half-second stall, then 1 s at 10 fps: the file must show all three.
    times = [i / 30 for i in range(30)]
    times += [1.5 + i / 10 for i in range(10)]
    origin = 1000.0  # any clock: only differences count
    with Recorder(tmp_path / "out.mp4") as recorder:
        for n, at in enumerate(times):
            recorder.write(render_test_pattern(n, 320, 176), at=origin + at)
    decoded, size, duration = decode_video(tmp_path / "out.mp4")
    assert size == (320, 176)
    assert len(decoded) == len(times)
    assert max(abs(got - want) for got, want in zip(decoded, times, strict=True)) < 0.001
    assert duration == pytest.approx(times[-1], abs=0.15)


def test_frames_of_any_kind_and_size_are_accepted(tmp_path: pathlib.Path) -> None:
    shared = pattern_frame(1)
    shared.pts = 4242
    with Recorder(tmp_path / "mixed.mp4") as recorder:
        recorder.write(shared, at=0.0)  # yuv420p at the stream size: copied, not restamped
        recorder.write(render_test_pattern(2, 640, 352), at=0.04)  # BGR, another size: scaled
        recorder.write(pattern_frame(3).reformat(format="rgb24"), at=0.08)
        recorder.write(pattern_frame(4), at=0.08)  # same time as the last: nudged after it
    assert shared.pts == 4242
    decoded, size, _ = decode_video(tmp_path / "mixed.mp4")
    assert size == (320, 176)
    assert len(decoded) == 4
    assert decoded == sorted(set(decoded))


def test_close_is_idempotent_and_final(tmp_path: pathlib.Path) -> None:
    recorder = Recorder(tmp_path / "out.mp4")
    recorder.write(render_test_pattern(0, 320, 176))
    first = recorder.close()
    assert recorder.close() == first
    assert first.frames == 1 and first.size_bytes > 0
    with pytest.raises(SessionClosedError):
        recorder.write(render_test_pattern(1, 320, 176))


def test_a_recording_without_frames_leaves_no_file(tmp_path: pathlib.Path) -> None:
    result = Recorder(tmp_path / "empty.mp4").close()
    assert result.frames == 0
    assert not (tmp_path / "empty.mp4").exists()


def test_a_bad_path_fails_at_once(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot write"):
        Recorder(tmp_path / "missing-dir" / "out.mp4")


def test_record_ends_with_the_stream(tmp_path: pathlib.Path) -> None:
    session = HubSession()
    results = []
    worker = threading.Thread(
        target=lambda: results.append(record(session, tmp_path / "r.mp4")), name="test-record"
    )
    worker.start()
    wait_until(lambda: session.consumers == 1, what="the recorder to subscribe")
    for _ in range(10):
        session.publish()
    session.hub.close()  # the session ended cleanly
    worker.join(10)
    assert not worker.is_alive()
    (result,) = results
    assert result.frames == 10 and result.error is None
    assert len(decode_video(result.path)[0]) == 10


def test_stop_still_writes_what_was_already_received(tmp_path: pathlib.Path) -> None:
    session = HubSession()
    recorder = SessionRecorder(session, tmp_path / "r.mp4")  # subscribed, not yet started
    for _ in range(20):
        session.publish()
    result = recorder.start().stop()
    assert result.frames == 20 and result.frames_dropped == 0
    assert len(decode_video(result.path)[0]) == 20


def test_stop_returns_while_the_stream_outpaces_the_encoder(tmp_path: pathlib.Path) -> None:
    """Frames keep arriving faster than they are encoded; stop() records those received before
    it and returns, rather than chasing a stream it can never catch up with."""
    session = HubSession()
    big = av.VideoFrame.from_ndarray(
        np.random.default_rng(1).integers(0, 255, (720, 1280, 3), np.uint8), format="bgr24"
    )
    returned = threading.Event()

    def flood() -> None:
        deadline = time.monotonic() + 120
        while not returned.is_set() and time.monotonic() < deadline:
            session.publish(big)

    recorder = SessionRecorder(session, tmp_path / "r.mp4", backlog=30).start()
    flooder = threading.Thread(target=flood, name="test-flood")
    flooder.start()
    try:
        wait_until(lambda: recorder.frames_written >= 3, what="a few frames written")
        result = recorder.stop(timeout=60)  # raises DecartTimeoutError if it never finishes
    finally:
        returned.set()
        flooder.join(10)
    assert result.frames >= 3 and result.error is None
    assert result.frames_dropped > 0  # the encoder really was behind


def test_a_failed_stream_keeps_what_came_before(tmp_path: pathlib.Path) -> None:
    session = HubSession()
    recorder = SessionRecorder(session, tmp_path / "r.mp4").start()
    for _ in range(5):
        session.publish()
    wait_until(lambda: recorder.frames_written == 5, what="5 frames written")
    failure = ConnectionError("the peer connection failed")
    session.hub.close(error=failure)
    result = recorder.wait(timeout=10)
    assert result is not None
    assert result.error is failure
    assert result.frames == 5
    assert len(decode_video(result.path)[0]) == 5


def test_session_recorder_writes_a_playable_file_as_long_as_the_session(
    client: DecartClient, tmp_path: pathlib.Path
) -> None:
    session = client.realtime.connect(
        SMALL_LUCY, test_pattern(width=320, height=176), prompt="sketch", timeout=20
    )
    try:
        started = time.monotonic()  # before start(): its thread may record before we look
        recorder = SessionRecorder(session, tmp_path / "live.mp4").start()
        assert thread_alive("decart-recorder")
        wait_until(lambda: recorder.frames_written >= 45, what="1.5 s of video")
        result = recorder.stop()
        wall = time.monotonic() - started
    finally:
        session.disconnect()
    wait_until(lambda: not thread_alive("decart-recorder"), what="the recorder thread to end")
    assert recorder.stop() is result  # idempotent
    decoded, size, duration = decode_video(result.path)
    assert size == (1280, 720)  # the emulator answers at the model's own size
    assert len(decoded) == result.frames >= 45
    assert result.error is None
    # Real timestamps: the file lasts as long as the recording did (30 fps nominal or not).
    assert duration == pytest.approx(result.duration, abs=0.1)
    assert 0 < result.duration <= wall


def test_session_recorder_stops_after_its_seconds(
    client: DecartClient, tmp_path: pathlib.Path
) -> None:
    with client.realtime.connect(
        SMALL_LUCY, test_pattern(width=320, height=176), prompt="noir", timeout=20
    ) as session:
        recorder = SessionRecorder(session, tmp_path / "short.mp4", seconds=1.0).start()
        result = recorder.wait(timeout=10)
    assert result is not None and result.error is None
    assert 0.5 <= result.duration <= 1.0  # frames after its second are not recorded
    with av.open(str(result.path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
