"""Connecting: states, ids, errors that surface at once, timeouts, lifecycle and threads."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import SMALL_LUCY, still_frames, wait_until

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
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions


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
    finally:
        session.disconnect()
    assert session.get_connection_state() == "disconnected"
    assert not session.is_connected()


def test_disconnect_is_fast_idempotent_and_leaves_no_thread(emulator: Emulator) -> None:
    before = sdk_threads()
    session = RealtimeClient.connect(
        emulator.url, emulator.api_key, still_frames(), RealtimeConnectOptions(model=SMALL_LUCY)
    )
    session.wait_for_state("generating", timeout=10)
    assert len(sdk_threads()) > len(before)
    started = time.monotonic()
    session.disconnect()
    assert time.monotonic() - started < 2.0
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


def test_capacity_error_surfaces_at_once() -> None:
    with (
        Emulator(max_sessions=1) as emu,
        DecartClient(
            api_key=emu.api_key, base_url=emu.url, realtime_base_url=emu.realtime_url
        ) as client,
    ):
        first = client.realtime.connect(SMALL_LUCY, still_frames())
        started = time.monotonic()
        with pytest.raises(ServerAtCapacityError, match="capacity"):
            client.realtime.connect(SMALL_LUCY, still_frames())
        assert time.monotonic() - started < 5
        assert first.is_connected()  # the first session is unaffected


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


def test_connect_disconnect_cycles_leave_threads_and_fds_as_they_were(
    emulator: Emulator, client: DecartClient
) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()

    def cycle() -> None:
        session = client.realtime.connect(SMALL_LUCY, still_frames(), prompt="noir")
        session.read(timeout=10)
        session.disconnect()

    cycle()  # warm up: lazily created pools and codecs
    wait_until(lambda: emulator.sessions() == [], what="sessions to end")
    threads, fds = threading.active_count(), process.num_fds()
    for _ in range(50):
        cycle()
    wait_until(lambda: emulator.sessions() == [], what="sessions to end")
    wait_until(lambda: threading.active_count() <= threads, 10, "threads to return")
    wait_until(lambda: process.num_fds() <= fds + 2, 10, "file descriptors to return")
