"""examples/flask_app.py, as a visitor uses it: the page, the stream, the forms, the JSON
endpoints; and as a developer runs it: one command that serves until stopped."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from _example_helpers import EXAMPLES, jpeg_parts, solid_jpeg
from _support.decoding import decode_image
from _support.processes import offline_env
from _support.sessions import client_of
from flask import Flask
from flask.testing import FlaskClient
from flask_app import create_app

from decart_sync import DecartClient
from decart_sync.emulator import Emulator
from decart_sync.testing import wait_until
from decart_sync.web import SharedSession


@pytest.fixture
def app(client: DecartClient) -> Iterator[Flask]:
    app = create_app(client, prompt="noir")
    yield app
    live(app).close()


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def live(app: Flask) -> SharedSession:
    stream: SharedSession = app.extensions["live_stream"]
    return stream


def test_the_page_shows_the_stream_and_both_forms(browser: FlaskClient) -> None:
    page = browser.get("/").get_data(as_text=True)
    assert '<img id="live" src="/video.mjpg"' in page
    assert 'action="/prompt"' in page and 'value="noir"' in page
    assert 'action="/image"' in page and 'enctype="multipart/form-data"' in page


def test_no_session_is_opened_until_someone_watches(
    browser: FlaskClient, emulator: Emulator
) -> None:
    status = browser.get("/api/status").get_json()
    assert status == {"state": "disconnected", "session_id": None, "prompt": "noir"}
    browser.get("/")
    assert emulator.sessions() == []


def test_the_video_streams_jpegs_until_the_visitor_leaves(
    app: Flask, browser: FlaskClient, emulator: Emulator
) -> None:
    response = browser.get("/video.mjpg", buffered=False)
    assert response.status_code == 200
    assert response.content_type == "multipart/x-mixed-replace; boundary=frame"
    received = b""
    chunks = iter(response.response)
    while len(jpeg_parts(received)) < 2:
        received += next(chunks)
    first, second = jpeg_parts(received)[:2]
    assert decode_image(first).shape == (720, 1280, 3)  # the model's size
    assert decode_image(second).shape == (720, 1280, 3)
    assert first != second  # two different frames, not one repeated

    broadcaster = live(app).broadcaster()
    assert broadcaster is not None and broadcaster.viewers == 1
    response.close()  # what the server does when the visitor goes away
    wait_until(lambda: broadcaster.viewers == 0, what="the viewer to detach")
    wait_until(lambda: not broadcaster.encoding, what="the encoder to stop")

    # The status endpoint now describes the session the stream opened.
    status = browser.get("/api/status").get_json()
    (session,) = emulator.sessions()
    assert status["session_id"] == session.session_id
    assert status["state"] == "generating"
    assert status["prompt"] == "noir" and session.effect == "noir"
    assert status["stats"]["frames_received"] >= 2
    assert status["viewers"] == 0


def test_the_prompt_form_changes_the_session_prompt(
    browser: FlaskClient, emulator: Emulator
) -> None:
    response = browser.post("/prompt", data={"prompt": "negative"})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    # set_prompt returned only once the server applied it: no waiting needed here.
    (session,) = emulator.sessions()
    assert session.prompt == "negative"
    assert session.effect == "negative"
    assert browser.get("/api/status").get_json()["prompt"] == "negative"
    assert 'value="negative"' in browser.get("/").get_data(as_text=True)


def test_an_empty_prompt_is_refused(browser: FlaskClient, emulator: Emulator) -> None:
    response = browser.post("/prompt", data={"prompt": "   "})
    assert response.status_code == 400
    assert response.get_json() == {"error": "the prompt is empty"}
    assert emulator.sessions() == []


def test_an_uploaded_image_becomes_the_reference_image(
    browser: FlaskClient, emulator: Emulator
) -> None:
    upload = {"image": (io.BytesIO(solid_jpeg((0, 0, 255))), "red.jpg")}
    response = browser.post("/image", data=upload, content_type="multipart/form-data")
    assert response.status_code == 303
    (session,) = emulator.sessions()
    assert session.has_image
    assert session.effect == "noir+palette"  # the prompt was kept
    assert session.prompt == "noir"


def test_an_upload_that_is_not_an_image_gets_a_json_error(
    browser: FlaskClient, emulator: Emulator
) -> None:
    upload = {"image": (io.BytesIO(b"not an image at all"), "notes.txt")}
    response = browser.post("/image", data=upload, content_type="multipart/form-data")
    assert response.status_code in (400, 502)
    assert "image" in response.get_json()["error"]
    (session,) = emulator.sessions()
    assert not session.has_image


def test_the_token_endpoint_returns_a_client_token(
    browser: FlaskClient, emulator: Emulator
) -> None:
    response = browser.post("/api/realtime-token")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"apiKey", "expiresAt"}
    assert body["apiKey"].startswith("ek_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["expiresAt"])
    assert emulator.sessions() == []  # a token needs no session


def test_the_token_endpoint_answers_500_when_the_service_refuses(
    emulator: Emulator,
) -> None:
    with client_of(emulator, api_key="sk-not-a-key-the-emulator-knows") as bad:
        app = create_app(bad)
        response = app.test_client().post("/api/realtime-token")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Failed to create client token"}


def test_the_one_command_serves_until_stopped_and_summarises() -> None:
    """``python examples/flask_app.py``, with its embedded emulator, on a free port."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "flask_app.py"), "--port", "0", "--seconds", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"Serving on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        url = match[1]
        assert requests.post(url + "prompt", data={"prompt": "sepia"}, timeout=30).ok
        status = requests.get(url + "api/status", timeout=10).json()
        assert status["prompt"] == "sepia" and status["state"] in ("connected", "generating")
        with requests.get(url + "video.mjpg", stream=True, timeout=10) as stream:
            received = b""
            chunks = stream.iter_content(64 * 1024)
            while len(jpeg_parts(received)) < 2:
                received += next(chunks)
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert re.search(r"Stopped after [\d.]+ s: session \w+ received \d+ frames", out), out
    assert "aioice" not in err  # no ICE chatter at INFO
