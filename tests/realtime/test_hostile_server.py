"""A server that misbehaves: what it sends costs the affected session a reconnect at most, and
never another session, the signaling reader, or a typed error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _hostile_proxy import HostileProxy
from _support.pictures import still_frames
from _support.sessions import FAST_RECONNECT, SMALL_LUCY, client_of

from decart_sync import DecartClient, DecartSDKError, SignalingError, WebRTCError
from decart_sync.emulator import Emulator
from decart_sync.realtime import ReconnectPolicy
from decart_sync.realtime._signaling_reader import THREAD_NAME
from decart_sync.testing import wait_until

DEEP_JSON = "[" * 5000 + "]" * 5000


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[HostileProxy]:
    with HostileProxy(emulator.realtime_url) as hostile:
        yield hostile


@pytest.fixture
def proxied(emulator: Emulator, proxy: HostileProxy) -> Iterator[DecartClient]:
    with client_of(emulator, realtime_base_url=proxy.url) as c:
        yield c


def _connect(client: DecartClient, **kwargs: Any) -> Any:
    kwargs.setdefault("reconnect", ReconnectPolicy(**FAST_RECONNECT))
    session = client.realtime.connect(SMALL_LUCY, still_frames(), prompt="sketch", **kwargs)
    session.wait_for_state("generating", timeout=15)
    return session


def _reader_alive() -> bool:
    return any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize(
    "garbage",
    [DEEP_JSON, '{"type": ' * 3000, '{"type": "prompt_ack"}', "{not json"],
    ids=["nested-5000-deep", "unterminated-deep", "ack-missing-fields", "not-json"],
)
def test_a_malformed_server_message_costs_one_session_a_reconnect(
    client: DecartClient, proxied: DecartClient, proxy: HostileProxy, garbage: str
) -> None:
    bystander = _connect(client)
    victim = _connect(proxied)
    errors: list[DecartSDKError] = []
    states: list[str] = []
    victim.on("error", errors.append)
    victim.on("connection_change", states.append)
    try:
        old_id = victim.session_id
        assert proxy.inject(garbage) == 1
        wait_until(lambda: "reconnecting" in states, 10, "the victim to notice")
        wait_until(
            lambda: victim.session_id != old_id and victim.get_connection_state() == "generating",
            20,
            "the victim reconnected",
        )
        # The reader survived: both sessions still get their acknowledgements.
        assert _reader_alive()
        victim.set_prompt("neon", timeout=10)
        bystander.set_prompt("noir", timeout=10)
        assert not errors  # a reconnect that worked is no error the user must handle
    finally:
        victim.disconnect()
        bystander.disconnect()


def test_a_new_session_connects_after_a_malformed_message(
    proxied: DecartClient, client: DecartClient, proxy: HostileProxy
) -> None:
    victim = _connect(proxied, reconnect=ReconnectPolicy(attempts=0))
    ended: list[DecartSDKError] = []
    victim.on("error", ended.append)
    proxy.inject(DEEP_JSON)
    wait_until(lambda: ended, 10, "the session without reconnects to end with an error")
    assert isinstance(ended[0], SignalingError)
    assert "malformed" in str(ended[0])
    victim.disconnect()
    later = _connect(client)
    try:
        later.set_prompt("cartoon", timeout=10)
    finally:
        later.disconnect()


def test_a_malformed_sdp_answer_is_a_typed_error(
    proxied: DecartClient, proxy: HostileProxy
) -> None:
    def spoil_answer(text: str) -> str:
        message = json.loads(text)
        if message.get("type") == "answer":
            message["sdp"] = "v=0\r\nthis is not an SDP\r\n"
        return json.dumps(message)

    proxy.rewrite = spoil_answer
    with pytest.raises(WebRTCError, match="answer"):
        proxied.realtime.connect(
            SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT), timeout=15
        )
