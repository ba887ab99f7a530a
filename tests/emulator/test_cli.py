"""``decart-sync emulator`` as a user runs it: a separate process, served, then Ctrl-C."""

from __future__ import annotations

import argparse
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from rawclient import WAIT, MediaLoop, RawClient

from decart_sync.emulator import cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """The emulator command, with its output read line by line on a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "decart_sync.cli", "emulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def read_until(self, marker: str, timeout: float = WAIT) -> str:
        while not any(marker in line for line in self.output):
            try:
                self.output.append(self.lines.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} in {''.join(self.output)!r}") from None
        return "".join(self.output)


@pytest.fixture
def process() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
        proc.popen.wait(10)


def test_the_command_serves_a_session_and_stops_on_ctrl_c(
    process: list[Process], media: MediaLoop
) -> None:
    port = _free_port()
    proc = Process(
        "--port", str(port), "--api-key", "first-key", "--api-key", "second-key",
        "--admin-token", "admin-secret", "--max-sessions", "3", "--max-sessions-per-key", "1",
    )  # fmt: skip
    process.append(proc)
    banner = proc.read_until("Ctrl-C")
    assert f"http://127.0.0.1:{port}" in banner
    assert f"ws://127.0.0.1:{port}" in banner
    assert "first-key" in banner and "admin-secret" in banner
    assert (
        f"DecartClient(\n        api_key='first-key',\n        base_url='http://127.0.0.1:{port}',"
        f"\n        realtime_base_url='ws://127.0.0.1:{port}',\n    )" in banner
    )
    assert "    export DECART_API_KEY=first-key\n" in banner
    assert f"    export DECART_BASE_URL=http://127.0.0.1:{port}\n" in banner
    assert f"    export DECART_REALTIME_BASE_URL=ws://127.0.0.1:{port}\n" in banner
    assert "models.register" not in banner  # no extra model, nothing to register

    url = RawClient.producer_url(f"ws://127.0.0.1:{port}", "second-key")
    with RawClient(url, media) as client:
        assert client.set_prompt("cartoon")["success"]
        client.negotiate()
        frame = client.wait_frames(3)
        assert (frame.width, frame.height) == (1280, 720)
        with RawClient(url, media) as over_the_limit:  # the key's second session
            assert over_the_limit.expect("error")["error"] == "Concurrent session limit reached."
            assert over_the_limit.wait_closed().code == 1013

        proc.popen.send_signal(signal.SIGINT)
        assert proc.popen.wait(WAIT) == 0
        assert client.expect("generation_ended")["reason"] == "disconnect"
        assert client.wait_closed().code == 1001
    assert "emulator stopped" in proc.read_until("emulator stopped")


def test_a_model_it_serves_is_usable_by_name_as_its_banner_says(
    process: list[Process], tmp_path: pathlib.Path
) -> None:
    proc = Process("--port", str(_free_port()), "--model", "my-model:640x352@30")
    process.append(proc)
    banner = proc.read_until("Ctrl-C")
    assert "also serves:    my-model (640x352@30)" in banner
    exports = [line.strip() for line in banner.splitlines() if line.startswith("    export ")]
    assert len(exports) == 3
    code = textwrap.dedent(banner.split("or connect with:\n", 1)[1].split("\nPress Ctrl-C")[0])
    assert "models.register(ModelDefinition(name='my-model'" in code
    # The banner's code as pasted, then a client made from the banner's exports alone.
    script = tmp_path / "connect.py"
    script.write_text(
        code
        + """
from decart_sync.media import test_pattern

client.close()
with DecartClient() as from_the_shell:
    session = from_the_shell.realtime.connect("my-model", test_pattern(), prompt="sketch")
    ok, frame = session.read(timeout=20)
    assert ok and frame.shape == (352, 640, 3), frame.shape
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECART_")}
    shell = "\n".join([*exports, 'exec "$0" "$1"'])
    result = subprocess.run(
        ["sh", "-c", shell, sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_command_reports_a_busy_port(process: list[Process]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = Process("--port", str(sock.getsockname()[1]))
        process.append(proc)
        assert proc.popen.wait(WAIT) == 1
    assert "cannot listen" in proc.read_until("cannot listen")


def test_arguments_and_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.api_keys, args.max_sessions, args.admin_token) == (
        "127.0.0.1",
        8765,
        None,
        None,
        None,
    )
    assert args.max_sessions_per_key is None
    for flag in ("--max-sessions", "--max-sessions-per-key"):
        assert cli.run(parser.parse_args([flag, "-1"])) == 2
