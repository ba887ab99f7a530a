"""Headless Chromium through the system chromedriver, for the tests that open a page (the Flask
example, Decart's JS client). Nothing is downloaded (with the driver's path given, Selenium
Manager does not run) and nothing contacted but the page and what it connects to."""

from __future__ import annotations

import os
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, off the GPU, and off the network: no update checks, no sync, no QUIC probes, no
# first-run pages.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
)


def chromium_binary() -> str | None:
    """Debian's Chromium, or None when it (or its chromedriver) is not installed."""
    if not os.path.exists(CHROMEDRIVER):
        return None
    return next((path for path in CHROMIUM_CANDIDATES if os.path.exists(path)), None)


def chromium_options(profile: str, *flags: str) -> Any:
    """Selenium's options for a headless Chromium with :data:`FLAGS`, ``flags`` and its own
    profile folder; the caller adds what its page needs."""
    from selenium import webdriver

    binary = chromium_binary()
    assert binary is not None, "Chromium and chromedriver are not installed"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, *flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return options


def start_chromium(options: Any, log_output: str | None = None) -> Any:
    """A Chromium session with ``options``, through the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    service = Service(executable_path=CHROMEDRIVER, log_output=log_output)
    return webdriver.Chrome(service=service, options=options)
