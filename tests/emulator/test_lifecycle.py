"""The in-process handle: start, stop, restart, waiting, and that nothing is left behind."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from aiortc import RTCPeerConnection
from rawclient import MediaLoop, RawClient, http

from decart_sync.emulator import Emulator

Connect = Callable[..., RawClient]


def _emulator_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("decart-emulator")]


def test_start_and_stop_are_idempotent_and_leave_no_threads() -> None:
    emulator = Emulator()
    assert not emulator.running
    assert emulator.start() is emulator.start()
    assert emulator.running and emulator.port > 0
    assert "decart-emulator" in _emulator_threads()
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"
    assert emulator.realtime_url == f"ws://127.0.0.1:{emulator.port}"
    assert http("GET", emulator.url + "/health")[0] == 200
    emulator.stop()
    emulator.stop()
    assert not emulator.running
    assert _emulator_threads() == []
    with pytest.raises(OSError):
        http("GET", emulator.url + "/health")
    with pytest.raises(RuntimeError, match="not running"):
        emulator.sessions()


def test_a_stopped_emulator_starts_again_on_its_port() -> None:
    with Emulator() as emulator:
        port = emulator.port
    with emulator:
        assert emulator.port == port
        assert http("GET", emulator.url + "/health")[0] == 200


def test_stop_says_goodbye_to_every_session(media: MediaLoop) -> None:
    emulator = Emulator().start()
    url = RawClient.producer_url(emulator.realtime_url, emulator.api_key)
    with RawClient(url, media) as client:
        client.set_prompt("bye")
        client.negotiate()
        client.wait_frames(2)
        emulator.stop()
        ended = client.expect("generation_ended")
        assert ended["reason"] == "disconnect"
        assert client.wait_closed().code == 1001


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Emulator(api_keys=())
    with pytest.raises(ValueError):
        Emulator(port=70000)
    with pytest.raises(ValueError):
        Emulator(max_sessions=-1)


def test_a_busy_port_fails_start() -> None:
    with Emulator() as first, pytest.raises(OSError):
        Emulator(port=first.port).start()


def test_wait_for_times_out() -> None:
    with Emulator() as emulator, pytest.raises(TimeoutError):
        emulator.wait_for(lambda emu: len(emu.sessions()) > 0, timeout=0.2)


def test_blocking_calls_from_the_loop_thread_raise(emulator: Emulator) -> None:
    outcome: list[BaseException] = []
    done = threading.Event()

    def on_loop() -> None:
        try:
            emulator.sessions()
        except RuntimeError as exc:
            outcome.append(exc)
        done.set()

    assert emulator._loop is not None
    emulator._loop.call_soon_threadsafe(on_loop)
    assert done.wait(10)
    assert "loop thread" in str(outcome[0])


def test_finished_sessions_leave_no_peer_connection_open(
    emulator: Emulator, connect: Connect
) -> None:
    for ending in ("client closes", "fault"):
        client = connect()
        client.set_prompt("leak check")
        client.negotiate()
        client.wait_frames(2)
        if ending == "fault":
            emulator.drop_websocket()
        client.close()
        emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
    gc.collect()
    still_open = [
        pc
        for pc in gc.get_objects()
        if isinstance(pc, RTCPeerConnection) and pc.connectionState != "closed"
    ]
    assert still_open == []


def test_the_pytest_plugin_does_not_import_the_emulator() -> None:
    # Users may install decart-sync without the emulator extra (aiohttp); pytest still loads
    # the plugin for them.
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "import decart_sync.testing\n"
        "assert 'decart_sync.emulator' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_fixture_yields_a_running_emulator(decart_emulator: Emulator) -> None:
    assert decart_emulator.running
    assert decart_emulator.sessions() == []
