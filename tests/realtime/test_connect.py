"""Connecting: states, ids, errors that surface at once, timeouts, lifecycle and threads."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _support.pictures import picture, still_frames
from _support.sessions import FAST_RECONNECT, SMALL_LUCY

import decart_sync._workers
from decart_sync import (
    DecartClient,
    DecartTimeoutError,
    InvalidAPIKeyError,
    InvalidInputError,
    ModelNotFoundError,
    ModelState,
    Prompt,
    ServerAtCapacityError,
    SessionClosedError,
    models,
)
from decart_sync._protocol import SubscribeToken
from decart_sync._receivers import MarkerJitterBuffer, _single_threaded
from decart_sync.emulator import Emulator
from decart_sync.media import PushSource
from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions, ReconnectPolicy
from decart_sync.testing import wait_until


def threads_outside_the_emulator() -> list[str]:
    """Every Python thread but the in-process emulator's, whose pools may grow under load.

    Threads started outside Python are left out too: the livekit package's Rust runtime threads
    appear as ``threading._DummyThread`` once they log through Python, a new one whenever that
    runtime starts a worker, and Python 3.11 never forgets them even after they end."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if not t.name.startswith("decart-emulator") and not isinstance(t, threading._DummyThread)
    )


def sdk_threads() -> list[str]:
    """The client SDK's threads (the in-process emulator's own threads are not the SDK's)."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith("decart-") and not t.name.startswith("decart-emulator")
    )


def test_seed_classmethod_connect_reaches_generating(emulator: Emulator) -> None:
    seen: list[str] = []
    remote: list[object] = []
    session = RealtimeClient.connect(
        base_url=emulator.url,
        api_key=emulator.api_key,
        local_track=still_frames(),
        options=RealtimeConnectOptions(
            model=SMALL_LUCY,
            on_remote_stream=remote.append,
            initial_state=ModelState(prompt=Prompt(text="sketch", enhance=True)),
        ),
    )
    try:
        assert session.is_connected()
        # Events that happened inside connect() reach the first listener, in order.
        session.on("connection_change", seen.append)
        session.wait_for_state("generating", timeout=10)
        wait_until(lambda: seen[-1:] == ["generating"], what="generating event")
        assert seen == ["connecting", "connected", "generating"]
        assert session.get_connection_state() == "generating"
        wait_until(lambda: remote == [session], what="on_remote_stream")
        assert session.session_id and len(session.session_id) >= 8
        token = SubscribeToken.decode(session.subscribe_token or "")
        assert (token.sid, token.ip, token.port) == (session.session_id, "127.0.0.1", emulator.port)
        (info,) = emulator.sessions()
        assert info.prompt == "sketch"
        # The client trickles its own candidates too (protocol section 3, step 4); on loopback
        # there is exactly one, the 127.0.0.1 host candidate.
        assert info.candidates_received == 1
    finally:
        session.disconnect()
    assert session.get_connection_state() == "disconnected"
    assert not session.is_connected()


def test_disconnect_is_fast_idempotent_and_leaves_no_thread(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    before = sdk_threads()
    session = RealtimeClient.connect(
        emulator.url, emulator.api_key, still_frames(), RealtimeConnectOptions(model=SMALL_LUCY)
    )
    session.wait_for_state("generating", timeout=10)
    assert len(sdk_threads()) > len(before)
    with caplog.at_level(logging.WARNING, logger="decart_sync"):
        session.disconnect()
    # Nothing it waited for ran into its time limit (a time check would fail on a busy machine).
    assert not [r for r in caplog.records if r.name.startswith("decart_sync")]
    session.disconnect()
    wait_until(lambda: sdk_threads() == before, timeout=5, what="SDK threads to end")
    wait_until(lambda: not any(t.name.endswith("-decoder") for t in threading.enumerate()), 5)
    with pytest.raises(SessionClosedError):
        session.set_prompt("anime")


def test_bad_key_fails_at_once_with_its_type(emulator: Emulator) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidAPIKeyError, match="(?i)invalid api key"):
        RealtimeClient.connect(
            emulator.url, "wrong-key-123", still_frames(), RealtimeConnectOptions(model=SMALL_LUCY)
        )
    assert time.monotonic() - started < 5


@pytest.mark.emulator(max_sessions=1)
def test_capacity_is_tried_again_then_surfaces_as_a_capacity_error(
    client: DecartClient, emulator: Emulator
) -> None:
    """As Decart's clients do: a full service may free up, so the first connect is tried again
    with the reconnect policy's backoff; when it stays full, the error says so."""
    first = client.realtime.connect(SMALL_LUCY, still_frames())
    with pytest.raises(ServerAtCapacityError, match="capacity"):
        client.realtime.connect(
            SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT)
        )
    assert first.is_connected()  # the first session is unaffected
    first.disconnect()
    emulator.reject_next(2)  # full for two more tries, then room again
    with client.realtime.connect(
        SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT)
    ) as third:
        assert third.is_connected()


def test_unknown_model_is_model_not_found(client: DecartClient) -> None:
    with pytest.raises(ModelNotFoundError):
        client.realtime.connect("lucy-nope", still_frames())
    custom = models.ModelDefinition("not-a-model", "/v1/stream", 30, 320, 176)
    with pytest.raises(ModelNotFoundError):
        client.realtime.connect(custom, still_frames())


def test_connect_timeout_is_honoured(emulator: Emulator, client: DecartClient) -> None:
    emulator.withhold_acks()
    started = time.monotonic()
    with pytest.raises(DecartTimeoutError):
        client.realtime.connect(SMALL_LUCY, still_frames(), prompt="anime", timeout=1.0)
    assert time.monotonic() - started < 5
    emulator.clear_faults()
    wait_until(lambda: emulator.sessions() == [], what="the abandoned session to end")


def test_bad_source_and_options_are_invalid_input(client: DecartClient) -> None:
    with pytest.raises(InvalidInputError, match="iterable"):
        client.realtime.connect(SMALL_LUCY, 42)
    with pytest.raises(InvalidInputError, match="ModelDefinition"):
        RealtimeConnectOptions(model="lucy-2.1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="resolution"):
        RealtimeConnectOptions(model=SMALL_LUCY, resolution="4k")
    with pytest.raises(InvalidInputError, match="timeout"):
        client.realtime.connect(SMALL_LUCY, still_frames(), timeout=-1)


@pytest.mark.slow
def test_connect_disconnect_cycles_leave_threads_and_fds_as_they_were(
    emulator: Emulator, client: DecartClient
) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()

    def cycle() -> None:
        session = client.realtime.connect(SMALL_LUCY, still_frames(), prompt="noir")
        session.read(timeout=10)
        session.disconnect()

    def open_fds() -> dict[int, str]:
        gc.collect()  # a closed-over socket waiting for the collector is not a leak
        links = {}
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                links[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        return links

    cycle()  # warm up: lazily created pools and codecs
    wait_until(lambda: emulator.sessions() == [], what="sessions to end")
    threads, fds = threads_outside_the_emulator(), open_fds()
    for _ in range(50):
        cycle()
    wait_until(lambda: emulator.sessions() == [], what="sessions to end")
    # Generous deadlines: on a busy machine the last sessions' threads take their time to end
    # (a leak never ends, so it still fails).
    try:
        wait_until(lambda: len(threads_outside_the_emulator()) <= len(threads), 60, "threads")
    except AssertionError:
        raise AssertionError(
            f"threads did not return: before {threads}, now {threads_outside_the_emulator()}"
        ) from None
    try:
        wait_until(lambda: len(open_fds()) <= len(fds) + 2, 60, "file descriptors to return")
    except AssertionError:
        now = open_fds()
        extra = {fd: link for fd, link in now.items() if fds.get(fd) != link}
        connections = [c for c in process.net_connections("all") if c.fd in extra]
        raise AssertionError(f"leaked fds: {extra}; sockets: {connections}") from None


@pytest.mark.webrtc_only
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_preferred_codec_is_negotiated_and_frames_flow(client: DecartClient, codec: str) -> None:
    with client.realtime.connect(SMALL_LUCY, still_frames(), video_codec=codec) as session:
        assert session.read(timeout=10)[0]
        pc = session._controller._connection._media._pc  # type: ignore[union-attr]
        answer = pc.remoteDescription.sdp
        video = answer.split("m=video", 1)[1]
        first_payload = video.split("\r\n", 1)[0].split()[2]
        assert f"a=rtpmap:{first_payload} {codec.upper()}/90000" in answer
        # Frames leave the receive buffer on their marked last packet, with either codec.
        (transceiver,) = pc.getTransceivers()
        buffer = transceiver.receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(buffer, MarkerJitterBuffer)
        wait_until(lambda: buffer.released_on_marker >= 5, what="frames released on marker")
        assert transceiver.receiver._RTCRtpReceiver__decoder_thread in _single_threaded


def test_generation_ticks_carry_seconds(client: DecartClient) -> None:
    with client.realtime.connect(SMALL_LUCY, still_frames()) as session:
        ticks: list[int] = []
        session.on("generation_tick", lambda message: ticks.append(message.seconds))
        wait_until(lambda: len(ticks) >= 2, timeout=10, what="two ticks")
        assert ticks[0] >= 1 and ticks[1] == ticks[0] + 1


def test_disconnect_does_not_wait_for_a_source_stuck_in_a_read(
    client: DecartClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camera that stopped answering: disconnect() returns and leaves the read behind on its
    daemon worker. Every wait it might make is stretched to a minute, so a disconnect that
    waited for the read could not return before the read is let go."""
    monkeypatch.setattr(decart_sync._workers, "JOIN_TIMEOUT", 60.0)
    stuck, blocked, let_go = threading.Event(), threading.Event(), threading.Event()

    class Capture:
        def read(self) -> tuple[bool, np.ndarray]:
            if stuck.is_set():
                blocked.set()
                let_go.wait(60)
            return True, picture()

    session = client.realtime.connect(SMALL_LUCY, Capture())
    try:
        session.wait_for_state("generating", timeout=10)
        stuck.set()
        assert blocked.wait(10)
        done = threading.Event()
        closer = threading.Thread(target=lambda: (session.disconnect(), done.set()), name="closer")
        closer.start()
        assert done.wait(30), "disconnect() waited for the stuck read"
        assert not let_go.is_set()
        assert session.get_connection_state() == "disconnected"
    finally:
        let_go.set()
        session.disconnect()


def test_open_sessions_do_not_hang_interpreter_exit(emulator: Emulator) -> None:
    # A script that forgets disconnect() while its source is stuck in a blocking read (a camera
    # that stopped answering): the exit must neither wait for that read nor for the session.
    # The emulator runs here, in the test process, so only the script's exit ends its session.
    script = f"""
import sys, threading
sys.path.insert(0, {str(pathlib.Path(__file__).parents[1])!r})
from _support.pictures import picture
from _support.sessions import SMALL_LUCY
from decart_sync import DecartClient

stuck = threading.Event()

def stuck_camera():
    for _ in range(5):
        yield picture()
    stuck.set()
    threading.Event().wait()  # never answers again

client = DecartClient(api_key={emulator.api_key!r}, base_url={emulator.url!r},
                      realtime_base_url={emulator.realtime_url!r})
session = client.realtime.connect(SMALL_LUCY, stuck_camera())
assert session.read(timeout=10)[0]
assert stuck.wait(10)
print("leaving with", session.get_connection_state(), flush=True)
"""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "leaving with generating" in proc.stdout
    assert time.monotonic() - started < 30
    wait_until(lambda: emulator.sessions() == [], what="the session to be closed")


def test_sessions_share_one_signaling_thread_that_ends_with_the_last(
    client: DecartClient,
) -> None:
    def signaling_threads() -> int:
        return sum(t.name == "decart-signaling" for t in threading.enumerate())

    first = client.realtime.connect(SMALL_LUCY, still_frames())
    second = client.realtime.connect(SMALL_LUCY, still_frames())
    try:
        assert signaling_threads() == 1
        second.set_prompt("noir")  # both still get their messages
        first.set_prompt("sketch")
    finally:
        first.disconnect()
        assert signaling_threads() == 1
        second.disconnect()
    wait_until(lambda: signaling_threads() == 0, timeout=5, what="the reader thread to end")


HAND_MADE = models.ModelDefinition("my-new-model", "/v1/stream", 15, 320, 176)


@pytest.mark.emulator(extra_models=[HAND_MADE])
def test_a_hand_made_model_is_served_by_an_emulator_that_knows_it(
    client: DecartClient, emulator: Emulator
) -> None:
    with client.realtime.connect(HAND_MADE, still_frames(), prompt="noir") as session:
        ok, frame = session.read(timeout=10)
        assert ok and frame.shape == (176, 320, 3)  # the profile's size, not a registry one
        assert emulator.sessions()[0].model == "my-new-model"


def test_send_after_disconnect_is_refused_and_the_session_made_source_is_closed(
    client: DecartClient,
) -> None:
    session = client.realtime.connect(SMALL_LUCY)
    session.send(picture())
    source = session.source
    assert source is not None and not source.closed
    session.disconnect()
    assert source.closed
    with pytest.raises(SessionClosedError, match="disconnected"):
        session.send(picture())


def test_a_push_source_the_user_made_stays_open_after_disconnect(client: DecartClient) -> None:
    source = PushSource()
    session = client.realtime.connect(SMALL_LUCY, source)
    session.disconnect()
    with pytest.raises(SessionClosedError):
        session.send(picture())
    assert not source.closed  # the user's to close: it may feed the next session
    source.close()
