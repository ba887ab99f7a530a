"""Background reconnect: faults in the emulator, the session recovers with its state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support.pictures import picture, still_frames
from _support.sessions import FAST_RECONNECT, SMALL_LUCY, client_of, pushing

from decart_sync import (
    DecartClient,
    InsufficientCreditsError,
    InvalidAPIKeyError,
    ServerAtCapacityError,
    SessionClosedError,
)
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, ReconnectPolicy
from decart_sync.testing import wait_until


def connect(client: DecartClient, **kwargs: Any) -> RealtimeClient:
    kwargs.setdefault("reconnect", ReconnectPolicy(**FAST_RECONNECT))
    session = client.realtime.connect(SMALL_LUCY, still_frames(), **kwargs)
    session.wait_for_state("generating", timeout=10)
    return session


def record_states(session: RealtimeClient) -> list[str]:
    states: list[str] = []
    session.on("connection_change", states.append)
    wait_until(lambda: states[-1:] == ["generating"], what="initial states delivered")
    return states


def test_pushed_frames_reach_the_new_connection_after_a_drop(
    client: DecartClient, emulator: Emulator
) -> None:
    """A PushSource outlives its connection: the new track wakes on the same send() calls."""
    session = client.realtime.connect(
        SMALL_LUCY, reconnect=ReconnectPolicy(**FAST_RECONNECT), timeout=30
    )
    try:
        with pushing(session, picture()):
            session.wait_for_state("generating", timeout=10)
            frames = session.frames()
            before = frames.get(timeout=10)
            old_id = session.session_id
            emulator.drop_websocket()
            wait_until(
                lambda: (
                    session.session_id not in (None, old_id)
                    and session.get_connection_state() == "generating"
                ),
                15,
                "a new connection generating",
            )
            # The new connection's session in the emulator receives the pushed frames.
            wait_until(
                lambda: any(
                    s.session_id == session.session_id and s.frames_in > 10
                    for s in emulator.sessions()
                ),
                10,
                "pushed frames on the new connection",
            )
            after = frames.get(timeout=10, fresh=True)  # the same iterator yields again
            assert after.shape == before.shape
    finally:
        session.disconnect()


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda emu: emu.drop_websocket(), id="dropped-websocket"),
        pytest.param(lambda emu: emu.fail_peer_connection(), id="failed-peer-connection"),
        pytest.param(lambda emu: emu.restart(), id="server-restart"),
    ],
)
def test_fault_leads_to_reconnecting_then_generating_with_state_restored(
    client: DecartClient, emulator: Emulator, fault: Callable[[Emulator], object]
) -> None:
    session = connect(client, prompt="negative")
    try:
        states = record_states(session)
        frames = session.frames()
        before = frames.get(timeout=10)
        old_id = session.session_id
        fault(emulator)
        wait_until(lambda: "reconnecting" in states, what="reconnecting")
        wait_until(lambda: states[-1:] == ["generating"] and len(states) > 3, 15, "generating")
        assert states[states.index("reconnecting") :][-1] == "generating"
        assert "disconnected" not in states
        assert session.session_id != old_id
        # The new connection carries the acknowledged prompt, not passthrough.
        wait_until(lambda: [s.prompt for s in emulator.sessions()] == ["negative"], 10, "prompt")
        after = frames.get(timeout=10, fresh=True)  # the same iterator yields again
        assert abs(float(after.mean()) - float(before.mean())) < 15
    finally:
        session.disconnect()


def test_control_calls_during_reconnect_wait_for_the_new_connection(
    client: DecartClient, emulator: Emulator
) -> None:
    session = connect(client, prompt="sketch")
    try:
        states = record_states(session)
        emulator.reject_next(2)  # the first two attempts meet a full server
        emulator.drop_websocket()
        wait_until(lambda: "reconnecting" in states, what="reconnecting")
        session.set_prompt("noir", timeout=15)  # waits for the reconnect, then is acknowledged
        assert session.get_connection_state() in ("connected", "generating")
        assert [s.prompt for s in emulator.sessions()] == ["noir"]
    finally:
        session.disconnect()


def test_an_invalid_key_is_not_retried(client: DecartClient, emulator: Emulator) -> None:
    session = connect(client)
    errors: list[Exception] = []
    session.on("error", errors.append)
    states = record_states(session)
    frames = session.frames()
    emulator.reject_next(3, "Invalid API key")
    emulator.drop_websocket()
    wait_until(lambda: states[-1:] == ["disconnected"], 10, "disconnected")
    wait_until(lambda: errors, what="the error event")
    assert isinstance(errors[-1], InvalidAPIKeyError)
    # Exactly one attempt was made: two of the three rejections are still pending.
    assert _pending_rejections(emulator) == 2
    with pytest.raises(InvalidAPIKeyError):
        for _ in frames:
            pass
    with pytest.raises(InvalidAPIKeyError):
        session.set_prompt("anime")
    session.disconnect()


def _pending_rejections(emulator: Emulator) -> int:
    # Count by trying: each rejected connect consumes one; stop at the first accepted one.
    count = 0
    with client_of(emulator) as probe:
        while count < 5:
            try:
                probe.realtime.connect(SMALL_LUCY, still_frames(), timeout=10).disconnect()
                return count
            except InvalidAPIKeyError:
                count += 1
    return count


def test_giving_up_after_the_last_attempt(client: DecartClient, emulator: Emulator) -> None:
    session = connect(client, reconnect=ReconnectPolicy(attempts=3, min_delay=0.05, max_delay=0.1))
    errors: list[Exception] = []
    session.on("error", errors.append)
    states = record_states(session)
    finished = threading.Event()
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in session.frames():
                pass
        except BaseException as exc:
            outcome.append(exc)
        finished.set()

    threading.Thread(target=consume, name="test-consumer").start()
    emulator.reject_next(10)
    emulator.drop_websocket()
    wait_until(lambda: states[-1:] == ["disconnected"], 15, "disconnected")
    assert states[-2:] == ["reconnecting", "disconnected"]
    wait_until(lambda: errors, what="error event")
    assert isinstance(errors[-1], ServerAtCapacityError)
    assert finished.wait(5)
    assert isinstance(outcome[0], ServerAtCapacityError)  # an abnormal end raises
    with pytest.raises((ServerAtCapacityError, SessionClosedError)):
        session.wait_for_state("generating", timeout=1)
    session.disconnect()


def test_running_out_of_credits_ends_the_session_at_once(
    client: DecartClient, emulator: Emulator
) -> None:
    """Retrying cannot buy credits: no reconnect, one InsufficientCreditsError."""
    session = connect(client)
    states = record_states(session)
    errors: list[Exception] = []
    session.on("error", errors.append)
    emulator.end_session()  # generation_ended with reason insufficient_credits, then close
    wait_until(lambda: states[-1:] == ["disconnected"], 10, "the session to end")
    with pytest.raises(InsufficientCreditsError):
        session.wait_for_state("generating", timeout=5)
    session.disconnect()
    assert "reconnecting" not in states
    assert [type(e) for e in errors] == [InsufficientCreditsError]
    wait_until(lambda: not emulator.sessions(), 10, "no session left in the emulator")
