"""client_or_emulator(), as the examples use it: with no API key, a client of an emulator in this
process that closing the client stops; with a key, a plain client of Decart's service, made
without connecting anywhere."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import urllib.parse

import pytest

from decart_sync import DecartClient, InvalidAPIKeyError
from decart_sync.media import test_pattern
from decart_sync.offline import client_or_emulator

DECART_VARIABLES = ("DECART_API_KEY", "DECART_BASE_URL", "DECART_REALTIME_BASE_URL")


@pytest.fixture(autouse=True)
def no_decart_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the developer's shell holds, each test starts with no key and no URLs."""
    for name in DECART_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def host_and_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def test_without_a_key_the_client_talks_to_an_emulator_in_this_process() -> None:
    with client_or_emulator() as client:
        host, port = host_and_port(client.realtime_base_url)
        assert ipaddress.ip_address(host).is_loopback
        assert host_and_port(client.base_url) == (host, port)
        with client.realtime.connect("lucy-2.1", test_pattern(), prompt="sketch", timeout=30) as s:
            ok, frame = s.read(timeout=30)
            assert ok and frame is not None and frame.shape == (720, 1280, 3)
        assert client.tokens.create(expires_in=60).api_key.startswith("ek_")

    # Closing the client stopped its emulator: nothing listens there any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()


def test_an_empty_key_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_API_KEY", "  ")
    with client_or_emulator() as client:
        assert ipaddress.ip_address(host_and_port(client.base_url)[0]).is_loopback


def test_with_a_key_it_is_a_client_of_the_service_and_connects_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DECART_API_KEY", "sk-from-the-environment")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"client_or_emulator() connected somewhere: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    threads_before = set(threading.enumerate())

    with client_or_emulator() as client:
        assert type(client) is DecartClient
        assert client.api_key == "sk-from-the-environment"
        assert client.base_url == "https://api.decart.ai"
        assert client.realtime_base_url == "wss://api.decart.ai"
        assert set(threading.enumerate()) == threads_before  # no emulator, no loop thread

    # An explicit key and URLs (from Django settings, say) win over the environment.
    with client_or_emulator(
        "sk-explicit", base_url="http://127.0.0.1:9", realtime_base_url="ws://127.0.0.1:9"
    ) as client:
        assert type(client) is DecartClient and client.api_key == "sk-explicit"
        assert client.base_url == "http://127.0.0.1:9"
        assert client.realtime_base_url == "ws://127.0.0.1:9"


def test_without_a_key_or_the_emulator_extra_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a missing aiohttp looks like from here: the emulator cannot be imported.
    monkeypatch.setitem(sys.modules, "decart_sync.emulator.handle", None)
    with pytest.raises(InvalidAPIKeyError) as caught:
        client_or_emulator()
    assert "DECART_API_KEY" in caught.value.message
    assert "pip install 'decart-sync[emulator]'" in caught.value.message
