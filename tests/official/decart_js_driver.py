"""Drive Decart's JS client (``@decartai/sdk`` 0.0.46, unmodified) in headless Chromium against
an emulator, and print what happened as one JSON report on stdout.

Run by ``test_decart_js.py`` inside a private network namespace (protocol.md section 10), so
everything it starts lives there: the emulator, the HTTP server for the page, chromedriver and
Chromium, whose libwebrtc gathers its candidates on the namespace's 127.0.0.2 and can reach
nothing but this namespace. Usage::

    python decart_js_driver.py BUNDLE   # BUNDLE: the client as one ES module (decart-sdk.js)

The page (``decart_js_page.html``) connects with the client's own model ``lucy_2_rt``, which the
emulator serves as an extra profile, as ``decart-sync emulator --model lucy_2_rt:1280x720@20``
would: this client version predates the current model names.
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import pathlib
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/_support
from _support.chromium import chromium_options, start_chromium

from decart_sync.emulator import Emulator
from decart_sync.models import ModelDefinition
from decart_sync.testing import wait_until

PAGE = pathlib.Path(__file__).with_name("decart_js_page.html")
# The client's own model (its 0.0.x model list), at the size and rate it expects.
JS_MODEL = ModelDefinition("lucy_2_rt", "/v1/stream", 20, 1280, 720)
STEP_TIMEOUT = 60.0
# On top of _support.chromium's flags: mDNS host names off, as the emulator is given the address
# itself, as a page with camera permission would give it; video plays without a user's gesture.
PAGE_FLAGS = (
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def page_server(bundle: pathlib.Path) -> Iterator[str]:
    """The page and the bundle, served from a folder of their own on 127.0.0.1; yields the
    page's URL (another origin than the emulator's: another port)."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(PAGE, pathlib.Path(folder) / "index.html")
        shutil.copy(bundle, pathlib.Path(folder) / "decart-sdk.js")
        handler = functools.partial(QuietHandler, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/index.html"
        finally:
            server.shutdown()
            thread.join(10)


@contextmanager
def chromium(profile: str) -> Iterator[Any]:
    options = chromium_options(profile, *PAGE_FLAGS)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = start_chromium(options)
    driver.set_page_load_timeout(STEP_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


class ErrorsSent(logging.Handler):
    """Collects the ``error`` messages the emulator sends (it logs each at INFO)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sent: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "sending error" in message:
            self.sent.append(message)


def drive(browser: Any, url: str, emulator: Emulator, report: dict[str, Any]) -> None:
    browser.get(url)

    def page() -> dict[str, Any]:
        return dict(browser.execute_script("return window.report"))

    wait_until(lambda: "connected" in page() or "failure" in page(), STEP_TIMEOUT, "connect")
    report["page_after_connect"] = page()
    if "failure" in report["page_after_connect"]:
        return

    def sample() -> dict[str, Any]:
        seen = dict(browser.execute_script("return window.sample()"))
        report.setdefault("samples", []).append(seen)
        return seen

    def grey(seen: dict[str, Any]) -> bool:  # noir: the colours are gone
        return seen["width"] > 0 and max(seen["left"]) - min(seen["left"]) < 20

    def inverted(seen: dict[str, Any]) -> bool:  # negative: red turns cyan, blue turns yellow
        (r, g, b), (r2, g2, b2) = seen["left"], seen["right"]
        return g > r + 100 and b > r + 100 and r2 > b2 + 100 and g2 > b2 + 100

    wait_until(lambda: grey(sample()), STEP_TIMEOUT, "a transformed (noir) frame")
    report["noir"] = report["samples"][-1]
    report["session_after_connect"] = [s.prompt for s in emulator.sessions()]

    browser.execute_script("window.setPrompt('negative')")
    wait_until(lambda: page()["acked"] or "promptFailure" in page(), STEP_TIMEOUT, "the ack")
    wait_until(lambda: inverted(sample()), STEP_TIMEOUT, "a negative frame")
    report["negative"] = report["samples"][-1]

    browser.execute_script("window.createToken()")
    wait_until(lambda: "token" in page() or "tokenFailure" in page(), STEP_TIMEOUT, "a token")
    report["page"] = page()
    report["sessions"] = [
        {"prompt": s.prompt, "candidates_received": s.candidates_received}
        for s in emulator.sessions()
    ]
    report["console"] = [
        entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
    ]


def main(bundle: pathlib.Path) -> None:
    errors = ErrorsSent()
    emulator_log = logging.getLogger("decart_sync.emulator")
    emulator_log.setLevel(logging.INFO)
    emulator_log.addHandler(errors)
    report: dict[str, Any] = {}
    with (
        Emulator(extra_models=[JS_MODEL]) as emulator,
        page_server(bundle) as page_url,
        tempfile.TemporaryDirectory() as profile,
        chromium(profile) as browser,
    ):
        query = urlencode(
            {"ws": emulator.realtime_url, "http": emulator.url, "key": emulator.api_key}
        )
        try:
            drive(browser, f"{page_url}?{query}", emulator, report)
        finally:
            report["errors_sent"] = errors.sent
            print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
