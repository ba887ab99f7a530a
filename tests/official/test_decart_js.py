"""Decart's JS client ``@decartai/sdk`` 0.0.46 (npm, unmodified) in headless Chromium against the
emulator: it connects, shows a transformed frame, and its ``setPrompt`` is acknowledged.

This version sends the offer before any state, trickles its candidates ending in ``null``, and
answers a server ``ready`` with a second offer: it connects only if the emulator behaves as the
service does. Chromium, the emulator and the page all run in a private network namespace
(``decart_js_driver.py``; protocol.md section 10), so nothing but loopback is ever contacted.

Without Chromium, npm or network namespaces the test skips, unless CI requires it
(``DECART_REQUIRE_BROWSER=1``, ``DECART_REQUIRE_OFFICIAL_CLIENTS=1``, ``CI``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import pytest
from _official_clients import DECART_JS_VERSION, ClientUnavailable, official_js_bundle
from _support.requirements import unavailable

RunInNetns = Callable[..., subprocess.CompletedProcess[str]]

DRIVER = pathlib.Path(__file__).with_name("decart_js_driver.py")
RUN_TIMEOUT = 180.0

# Bundling with npm the first time takes a while (.ci/run does it before the tests).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def bundle() -> pathlib.Path:
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(path):
            unavailable(
                f"{path} is missing (apt-get install chromium chromium-driver)",
                "DECART_REQUIRE_BROWSER",
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')", "DECART_REQUIRE_BROWSER")
    try:
        return official_js_bundle(DECART_JS_VERSION)
    except ClientUnavailable as exc:
        unavailable(str(exc), "DECART_REQUIRE_OFFICIAL_CLIENTS")


def test_the_js_client_connects_shows_a_transformed_frame_and_gets_its_prompt_acked(
    bundle: pathlib.Path, private_netns: RunInNetns
) -> None:
    result = private_netns(
        [sys.executable, str(DRIVER), str(bundle)],
        timeout=RUN_TIMEOUT,
        cwd=str(pathlib.Path(__file__).parent),
    )
    assert result.returncode == 0, f"the driver failed:\n{result.stderr[-6000:]}"
    report = json.loads(result.stdout)
    page = report["page"]

    # Connected at the first try (an error during connect would have made it retry or fail).
    assert page["connected"] is True and "failure" not in page
    assert page["state"] in ("connected", "generating")
    # What it sent: the offer first, with no state (0.0.46 puts its initial prompt in a
    # setPrompt after connecting), candidates ending in null, then its prompts.
    assert page["sent"][0] == "offer"
    assert "ice-candidate:null" in page["sent"]
    assert page["sent"][-2:] == ["prompt", "prompt"]

    # A transformed frame at the model's size: the initial "noir" takes the colours away ...
    noir = report["noir"]
    assert (noir["width"], noir["height"]) == (1280, 720)
    assert report["session_after_connect"] == ["noir"]
    # ... and after setPrompt("negative"), acknowledged, the picture is inverted.
    assert page["acked"] == ["negative"] and "promptFailure" not in page
    assert [s["prompt"] for s in report["sessions"]] == ["negative"]
    assert report["negative"]["width"] == 1280

    # tokens.create() from the page, across origins (CORS): the section 6 response.
    assert "tokenFailure" not in page
    assert set(page["token"]) == {"apiKey", "token", "expiresAt"}

    # No error either way: none sent by the emulator, none seen by the client or the console.
    assert report["errors_sent"] == []
    assert page["errorEvents"] == [] and report["console"] == []
