"""Decart's official Python client ``decart`` 0.0.40, unmodified, against the emulator.

It runs in a subprocess from a side venv (``_official_clients.py``) and goes through what an
integrator does (``decart_py_driver.py``); the emulator runs here, on 127.0.0.1. Where the
official client and our tests disagree, the client is right: it worked against Decart's service.

Without the side venv (no package registry) the tests skip, unless
``DECART_REQUIRE_OFFICIAL_CLIENTS=1`` (CI sets it): a CI that cannot run them must not pass.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
from typing import Any

import pytest
from _official_clients import DECART_PY_VERSION, ClientUnavailable, official_python
from _support.requirements import unavailable

from decart_sync.emulator import Emulator

# Building the side venv the first time takes minutes (.ci/run builds it before the tests).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DRIVER = pathlib.Path(__file__).with_name("decart_py_driver.py")
# The driver bounds each of its steps; this bounds the whole run on a busy machine.
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def official() -> pathlib.Path:
    try:
        return official_python(DECART_PY_VERSION)
    except ClientUnavailable as exc:
        unavailable(str(exc), "DECART_REQUIRE_OFFICIAL_CLIENTS")


class Run:
    """One finished run of the driver: its JSON report and the client's log."""

    def __init__(self, official: pathlib.Path, emulator: Emulator, *scenario: str) -> None:
        args = [emulator.realtime_url, emulator.url, emulator.api_key, emulator.admin_token]
        result = subprocess.run(
            [str(official), str(DRIVER), *args, *scenario],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.log = result.stderr
        assert result.returncode == 0, f"the driver failed:\n{self.log[-6000:]}"
        self.report: dict[str, Any] = json.loads(result.stdout)

    def lines(self, level: str) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith(f"{level} ")]

    def received(self, kind: str) -> int:
        """How many ``kind`` messages the client logged receiving."""
        return self.log.count(f"Received {kind} message")


def test_the_official_python_client_runs_every_step_without_an_error(
    official: pathlib.Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="decart_sync.emulator")
    run = Run(official, emulator)
    report = run.report

    # Its log: no error at all, and neither of the messages it cannot take.
    assert run.lines("ERROR") == run.lines("CRITICAL") == []
    assert run.received("answer") == 3  # producer, viewer, token session
    assert run.received("ready") == run.received("ice-candidate") == 0
    # And the emulator told it no error either (each would be logged here).
    assert not [r for r in caplog.records if "sending error" in r.getMessage()]

    # Producer: connected with its initial prompt, frames at the model's size.
    assert report["connected_state"] in ("connected", "generating")
    assert report["frame_sizes"] == [[1280, 720]]
    (session,) = report["after_connect"]
    assert (session["model"], session["prompt"], session["effect"]) == (
        "lucy-2.1",
        "sketch",
        "sketch",
    )
    assert report["frames"] >= 20 and report["errors"] == [] and report["ticks"]

    # set_prompt, then set() with an image and a prompt, each applied when acknowledged.
    assert [(s["prompt"], s["effect"]) for s in report["after_set_prompt"]] == [("noir", "noir")]
    (after_set,) = report["after_set"]
    assert (after_set["prompt"], after_set["has_image"]) == ("negative", True)

    # The viewer, from the producer's subscribe token.
    assert report["viewer_frames"] >= 5 and report["viewer_frame_sizes"] == [[1280, 720]]
    assert [s["subscribers"] for s in report["with_viewer"]] == [1]

    # tokens.create() in every request shape, validated by the client's own types.
    tokens = report["tokens"]
    assert all(t["api_key"].startswith("ek_") and t["expires_at"] for t in tokens.values())
    unrestricted = ("empty", "expires_in", "metadata", "constraints")
    assert all(tokens[shape]["permissions"] is None for shape in unrestricted)
    assert tokens["allowed_models"]["permissions"] == {"models": ["lucy-2.1"]}
    assert tokens["allowed_origins"]["permissions"] == {"origins": ["https://app.example"]}
    assert tokens["everything"]["permissions"] == {
        "models": ["lucy-2.1", "lucy-2.5"],
        "origins": ["https://app.example", "http://localhost:3000"],
    }
    assert tokens["everything"]["constraints"] == {"realtime": {"maxSessionDuration": 120}}
    # A client token opens a session; with no initial state the client asks for passthrough.
    (token_session,) = report["token_session"]
    assert (token_session["effect"], token_session["state"]) == ("passthrough", "generating")


def test_the_log_check_catches_what_the_client_cannot_take(
    official: pathlib.Path, emulator: Emulator
) -> None:
    # The trickle fault sends what the service never does: the client logs an ERROR for each
    # server ice-candidate. The check above would catch a regression.
    emulator.trickle_candidates()
    run = Run(official, emulator, "connect-only")
    assert run.report["frames"] >= 5  # it still connects ...
    assert run.received("ice-candidate") >= 1
    assert any("Error handling message" in line for line in run.lines("ERROR"))  # ... but errs
