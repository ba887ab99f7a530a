"""The emulator in a process of its own, so the SDK's CPU and the emulator's are measured apart.

The benchmarks start it with :class:`EmulatorProcess`; this file is also the program that runs in
the child (``python benchmarks/_emulator_process.py``). The child listens on 127.0.0.1 and a free
port, prints one JSON line with its addresses, then answers commands read from stdin, one a line:

* ``threads``: one JSON line with the CPU seconds of each of its threads (see
  :func:`_common.thread_cpu_snapshot`), so the benchmark can tell decoding from rendering from
  encoding on the emulator's side too;
* ``quit`` (or the end of stdin): stop the emulator and exit.

Extra model profiles (``--extra-model NAME:WIDTHxHEIGHT@FPS``) are served with the emulator's
own ``extra_models`` option (what ``decart-sync emulator --model`` does); the SDK process
connects with a hand-made ``ModelDefinition`` of that name.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

import _common

from decart_sync.commands.model_spec import model_profile

READY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def profile_argument(name: str, width: int, height: int, fps: int) -> str:
    return f"{name}:{width}x{height}@{fps}"


class EmulatorProcess:
    """A running emulator child process: its addresses, its pid, and its threads' CPU."""

    def __init__(self, extra_models: list[str] | None = None) -> None:
        self._extra = list(extra_models or [])
        self._child: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.url = ""
        self.realtime_url = ""
        self.api_key = ""
        self.pid = 0

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        command = [sys.executable, str(Path(__file__).resolve())]
        for profile in self._extra:
            command += ["--extra-model", profile]
        # The child's log goes to a file: only read if it fails to start.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - stop()
        self._child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self.pid = self._child.pid
        try:
            ready = json.loads(self._read_line(READY_TIMEOUT))
        except Exception as exc:
            raise RuntimeError(f"the emulator process did not start: {self._log_tail()}") from exc
        self.url, self.realtime_url, self.api_key = (
            ready["url"],
            ready["realtime_url"],
            ready["api_key"],
        )

    def meter(self) -> _common.ProcessMeter:
        return _common.ProcessMeter(self.pid)

    def thread_cpu(self) -> dict[int, tuple[str, float]]:
        """The child's per-thread CPU snapshot (see :func:`_common.thread_cpu_snapshot`)."""
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.write("threads\n")
        self._child.stdin.flush()
        return _common.snapshot_from_json(json.loads(self._read_line(COMMAND_TIMEOUT)))

    def stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            if child.stdin is not None:
                child.stdin.write("quit\n")
                child.stdin.close()
        except OSError:
            pass  # already gone
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(STOP_TIMEOUT)
        if child.stdout is not None:
            child.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _read_line(self, timeout: float) -> str:
        assert self._child is not None and self._child.stdout is not None
        stdout = self._child.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"no answer from the emulator process within {timeout:g} s")
        line = stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited")
        return line

    def _log_tail(self) -> str:
        if self._stderr is None:
            return "(no log)"
        self._stderr.seek(0)
        return self._stderr.read()[-2000:] or "(empty log)"


# ---------------------------------------------------------------- the child


def _child_main(argv: list[str]) -> int:
    arguments = argparse.ArgumentParser(description="emulator child of the benchmarks")
    arguments.add_argument(
        "--extra-model", action="append", default=[], type=model_profile, metavar="PROFILE"
    )
    args = arguments.parse_args(argv)

    from decart_sync.emulator import Emulator

    emulator = Emulator(host="127.0.0.1", port=0, extra_models=args.extra_model).start()
    try:
        ready = {"url": emulator.url, "realtime_url": emulator.realtime_url}
        ready["api_key"] = emulator.api_key
        ready["pid"] = str(os.getpid())
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "threads":
                print(json.dumps(_common.snapshot_json(_common.thread_cpu_snapshot())), flush=True)
            elif command == "quit":
                break
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
