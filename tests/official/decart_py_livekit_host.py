"""Host one run of ``decart_py_livekit_driver.py`` (Decart's Python client 0.2.4) against an
emulator, both inside the private network namespace this script is started in
(``test_decart_python_livekit.py``; protocol.md section 10).

Usage::

    python decart_py_livekit_host.py OFFICIAL_PYTHON

It starts an emulator on 127.0.0.1, runs the driver with the side venv's interpreter, watches
the emulator's sessions and the errors it sends meanwhile, and prints one JSON report: the
driver's own, its log, and what the emulator saw.
"""

from __future__ import annotations

import json
import logging
import pathlib
import subprocess
import sys
import threading
from typing import Any

import attrs

from decart_sync.emulator import Emulator
from decart_sync.models import ModelDefinition

DRIVER = pathlib.Path(__file__).with_name("decart_py_livekit_driver.py")
RUN_TIMEOUT = 200.0
# The client's model at a small size, so that a busy 2-core machine encodes and decodes both
# ways at the model's 30 fps with time to spare; the client takes whatever size it receives.
MODEL = ModelDefinition("lucy-2.1", "/v1/stream", 30, 320, 176)


class ErrorsSent(logging.Handler):
    """Collects the ``error`` messages the emulator sends (it logs each one at INFO)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "sending error" in message:
            self.texts.append(message)


def watch_sessions(emulator: Emulator, seen: dict[str, Any], done: threading.Event) -> None:
    """Keep the latest snapshot of every producer session until ``done``."""
    while not done.is_set():
        for info in emulator.sessions():
            seen[info.session_id] = attrs.asdict(info)
        done.wait(0.1)


def main(official_python: str) -> dict[str, Any]:
    errors = ErrorsSent()
    logging.getLogger("decart_sync.emulator").addHandler(errors)
    logging.getLogger("decart_sync.emulator").setLevel(logging.INFO)
    seen: dict[str, Any] = {}
    done = threading.Event()
    with Emulator(extra_models=(MODEL,)) as emulator:
        watcher = threading.Thread(target=watch_sessions, args=(emulator, seen, done))
        watcher.start()
        try:
            argv = [official_python, str(DRIVER), emulator.realtime_url, emulator.api_key]
            result = subprocess.run(
                [*argv, str(MODEL.width), str(MODEL.height)],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        finally:
            done.set()
            watcher.join()
        emulator.wait_for(lambda emu: emu.sessions() == [], timeout=15)
    lines = result.stdout.strip().splitlines()
    return {
        "returncode": result.returncode,
        "driver": json.loads(lines[-1]) if result.returncode == 0 and lines else None,
        "log": result.stderr,
        "errors_sent": errors.texts,
        "sessions": list(seen.values()),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
