"""The Flask example in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against the app served on 127.0.0.1 by a real HTTP
server and an emulator.

What a visitor sees: the picture moves, it shows the prompt's effect (``noir``: grey), and
after the prompt form is submitted with ``negative`` it shows that one (bright, in colour).

Without Chromium the test is skipped, unless ``DECART_REQUIRE_BROWSER=1`` (CI sets it), in which
case it fails: a CI that cannot run it must not pass silently.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from _example_helpers import colour_variation
from _support.chromium import chromium_binary, chromium_options, start_chromium
from _support.decoding import decode_image
from _support.requirements import unavailable
from _support.sessions import client_of
from flask_app import create_app
from werkzeug.serving import make_server

from decart_sync.emulator import Emulator
from decart_sync.media import render_test_pattern
from decart_sync.testing import wait_until
from decart_sync.web import SharedSession

_REQUIRED_BY = "DECART_REQUIRE_BROWSER"


@pytest.fixture
def chromium(tmp_path: pathlib.Path) -> Iterator[Any]:
    """A headless Chromium session (``_support.chromium``): only the page we open is fetched."""
    try:
        import selenium  # noqa: F401 - present, or the test skips
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')", _REQUIRED_BY)
    if chromium_binary() is None:
        unavailable(
            "Chromium is not installed (apt-get install chromium chromium-driver)", _REQUIRED_BY
        )

    options = chromium_options(str(tmp_path / "chromium-profile"), "--window-size=1400,1000")
    # The MJPEG <img> never finishes loading; wait for the document, not for every resource.
    options.page_load_strategy = "eager"
    driver = start_chromium(options, log_output=str(tmp_path / "chromedriver.log"))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(emulator: Emulator) -> Iterator[tuple[str, SharedSession]]:
    """The Flask example behind werkzeug's threaded server on 127.0.0.1, as ``flask_app.py``
    serves it; yields its URL."""
    with client_of(emulator) as client:
        app = create_app(client, prompt="noir")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
        thread.start()
        live: SharedSession = app.extensions["live_stream"]
        try:
            yield f"http://127.0.0.1:{server.port}/", live
        finally:
            live.close()  # ends the page's stream, so the server can shut down
            server.shutdown()
            thread.join(10)


def poll(
    read: Callable[[], np.ndarray], accept: Callable[[np.ndarray], bool], what: str
) -> np.ndarray:
    """Read the picture until ``accept`` takes it; fail after a deadline, saying what we saw."""
    seen: list[np.ndarray] = []

    def accepted() -> bool:
        seen.append(read())
        return accept(seen[-1])

    try:
        wait_until(accepted, timeout=15, what=what)
    except AssertionError:
        last = seen[-1]
        raise AssertionError(
            f"{what}: last picture had mean {last.mean():.1f}, colour variation "
            f"{colour_variation(last):.1f}"
        ) from None
    return seen[-1]


def test_the_page_shows_the_live_effect_and_the_prompt_form_changes_it(
    chromium: Any, site: tuple[str, SharedSession], emulator: Emulator
) -> None:
    from selenium.webdriver.common.by import By

    url, live = site
    chromium.get(url)

    def image() -> Any:
        return chromium.find_element(By.ID, "live")

    def loaded() -> bool:
        return bool(
            chromium.execute_script(
                "const img = document.getElementById('live');"
                "return img !== null && img.complete && img.naturalWidth > 0;"
            )
        )

    def picture() -> np.ndarray:
        # What the visitor sees: a screenshot of the <img> element as Chromium drew it.
        return decode_image(image().screenshot_as_png)

    wait_until(loaded, timeout=20, what="the first frame on the page")
    natural = chromium.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image()
    )
    assert natural == [1280, 720]

    # 1. The picture moves: a later screenshot differs from the first one.
    first = picture()
    poll(
        picture,
        lambda later: float(np.abs(later.astype(np.int16) - first).mean()) > 2.0,
        "the picture to change over time",
    )

    # 2. It shows the effect. The input is a colourful test pattern; "noir" makes it grey.
    assert colour_variation(render_test_pattern(0, 640, 352)) > 8
    noir = poll(picture, lambda shot: colour_variation(shot) < 2, "a grey (noir) picture")
    assert noir.mean() < 110  # and dark: noir keeps the pattern's dark ground

    # 3. Submitting the prompt form changes it.
    field = chromium.find_element(By.NAME, "prompt")
    field.clear()
    field.send_keys("negative")
    old_image = image()
    chromium.find_element(By.CSS_SELECTOR, "#prompt-form button").click()
    # The form posts, the handler calls set_prompt (blocking), and the browser is redirected
    # back to a fresh page.
    wait_until(lambda: is_stale(old_image), timeout=20, what="the page to reload")
    assert chromium.find_element(By.NAME, "prompt").get_attribute("value") == "negative"
    assert [s.prompt for s in emulator.sessions()] == ["negative"]
    assert live.prompt == "negative"
    wait_until(loaded, timeout=20, what="the stream on the reloaded page")
    negative = poll(
        picture,
        lambda shot: shot.mean() > noir.mean() + 60 and colour_variation(shot) > 6,
        "a bright, coloured (negative) picture",
    )
    assert negative.mean() > 140


def is_stale(element: Any) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.tag_name  # noqa: B018 - touching the element is the check
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        # Asked while the old document is being replaced, Chromium says so in other words.
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False
