"""examples/django_app, under WSGI (Django's test Client, ``runserver``) and under ASGI
(AsyncClient, and the ASGI application driven the way an ASGI server drives it)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import django
import pytest
import requests
from _example_helpers import EXAMPLES, jpeg_parts, solid_jpeg
from _support.decoding import decode_image
from _support.processes import offline_env

from decart_sync.emulator import Emulator
from decart_sync.testing import wait_until

# The project is imported as runserver would: from its folder (on sys.path, see conftest).
os.environ["DJANGO_SETTINGS_MODULE"] = "livevideo.settings"
django.setup()

from django.test import AsyncClient, Client, override_settings  # noqa: E402
from livevideo.asgi import application  # noqa: E402
from livevideo.live import stream  # noqa: E402


@pytest.fixture(autouse=True)
def site(emulator: Emulator) -> Iterator[None]:
    """The project pointed at the test's emulator, and left with no session afterwards."""
    with override_settings(
        DECART_API_KEY=emulator.api_key,
        DECART_BASE_URL=emulator.url,
        DECART_REALTIME_BASE_URL=emulator.realtime_url,
    ):
        stream.close()
        yield
        stream.close()


def two_jpegs(chunks: Iterator[bytes]) -> list[bytes]:
    received = b""
    while len(jpeg_parts(received)) < 2:
        received += next(chunks)
    return jpeg_parts(received)[:2]


# ------------------------------------------------------------------------------------ WSGI


def test_wsgi_the_page_and_a_status_before_anyone_watches(emulator: Emulator) -> None:
    browser = Client()
    page = browser.get("/").content.decode()
    assert '<img id="live" src="/video.mjpg"' in page
    assert 'action="/prompt"' in page and 'action="/image"' in page
    assert browser.get("/api/status").json() == {
        "state": "disconnected",
        "session_id": None,
        "prompt": "noir",
    }
    assert emulator.sessions() == []


def test_wsgi_the_video_is_a_plain_iterator_of_jpegs_until_the_visitor_leaves(
    emulator: Emulator,
) -> None:
    browser = Client()
    response = browser.get("/video.mjpg")
    assert response.status_code == 200
    assert response["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    assert response.streaming and not response.is_async  # what a WSGI server can send
    first, second = two_jpegs(iter(response.streaming_content))
    assert decode_image(first).shape == decode_image(second).shape == (720, 1280, 3)
    assert first != second

    broadcaster = stream.broadcaster()
    assert broadcaster is not None and broadcaster.viewers == 1
    response.close()  # what the WSGI server does when the visitor goes away
    wait_until(lambda: broadcaster.viewers == 0, what="the viewer to detach")

    status = browser.get("/api/status").json()
    (session,) = emulator.sessions()
    assert status["session_id"] == session.session_id
    assert status["state"] == "generating" and status["stats"]["frames_received"] >= 2


def test_wsgi_the_forms_work_with_csrf_protection_on(emulator: Emulator) -> None:
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/prompt", {"prompt": "negative"}).status_code == 403
    page = browser.get("/").content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "the prompt form carries no CSRF token"
    token = match[1]

    response = browser.post("/prompt", {"prompt": "negative", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/"
    (session,) = emulator.sessions()
    assert session.prompt == "negative" and session.effect == "negative"

    upload = io.BytesIO(solid_jpeg((255, 0, 0)))
    upload.name = "blue.jpg"
    response = browser.post("/image", {"image": upload, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    (session,) = emulator.sessions()
    assert session.has_image and session.effect == "negative+palette"
    assert 'value="negative"' in browser.get("/").content.decode()


def test_wsgi_an_empty_prompt_is_refused(emulator: Emulator) -> None:
    response = Client().post("/prompt", {"prompt": ""})
    assert response.status_code == 400 and response.json() == {"error": "the prompt is empty"}
    assert emulator.sessions() == []


def test_wsgi_the_token_endpoint_returns_a_client_token() -> None:
    # No CSRF token: apps call it too; it is exempt (and should sit behind your own auth).
    response = Client(enforce_csrf_checks=True).post("/api/realtime-token")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"apiKey", "expiresAt"} and body["apiKey"].startswith("ek_")


def test_wsgi_the_token_endpoint_answers_500_when_the_service_refuses() -> None:
    with override_settings(DECART_API_KEY="sk-not-a-key-the-emulator-knows"):
        stream.close()
        response = Client().post("/api/realtime-token")
    assert response.status_code == 500
    assert response.json() == {"error": "Failed to create client token"}


# ------------------------------------------------------------------------------------ ASGI


def test_asgi_the_controls_and_json_endpoints(emulator: Emulator) -> None:
    async def visit() -> None:
        browser = AsyncClient()
        response = await browser.post("/prompt", {"prompt": "warm sunset"})
        assert response.status_code == 302
        (session,) = emulator.sessions()
        assert session.prompt == "warm sunset" and session.effect == "warm"

        status = (await browser.get("/api/status")).json()
        assert status["session_id"] == session.session_id and status["prompt"] == "warm sunset"

        token = (await browser.post("/api/realtime-token")).json()
        assert token["apiKey"].startswith("ek_")

    asyncio.run(visit())


def test_asgi_the_video_is_an_async_iterator_of_jpegs() -> None:
    async def watch() -> list[bytes]:
        response = await AsyncClient().get("/video.mjpg")
        assert response.status_code == 200
        assert response.is_async  # an async iterator: no thread held per viewer
        parts = aiter(response.streaming_content)  # type: ignore[arg-type]
        received = b""
        while len(jpeg_parts(received)) < 2:
            received += await asyncio.wait_for(anext(parts), 10)
        return jpeg_parts(received)[:2]

    first, second = asyncio.run(watch())
    assert decode_image(first).shape == (720, 1280, 3) and first != second


def test_asgi_a_visitor_who_disconnects_is_detached() -> None:
    """The ASGI application driven as uvicorn or daphne drive it: request, body chunks,
    then ``http.disconnect`` when the visitor closes the tab."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/video.mjpg",
        "raw_path": b"/video.mjpg",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def visit() -> list[dict[str, Any]]:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await incoming.put({"type": "http.request", "body": b"", "more_body": False})
        sent: list[dict[str, Any]] = []
        two_parts = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            body = b"".join(m.get("body", b"") for m in sent)
            if len(jpeg_parts(body)) >= 2:
                two_parts.set()

        task = asyncio.create_task(application(scope, incoming.get, send))
        await asyncio.wait_for(two_parts.wait(), 15)
        broadcaster = stream.broadcaster()
        assert broadcaster is not None and broadcaster.viewers == 1
        await incoming.put({"type": "http.disconnect"})
        await asyncio.wait_for(task, 10)
        # Django cancels the response on disconnect, which ends the viewer at once.
        for _ in range(500):
            if broadcaster.viewers == 0:
                break
            await asyncio.sleep(0.01)
        assert broadcaster.viewers == 0
        return sent

    sent = asyncio.run(visit())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"Content-Type"] == b"multipart/x-mixed-replace; boundary=frame"


# ------------------------------------------------------------------------------- runserver


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_one_command_runserver_serves_the_project() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "django_app" / "manage.py"),
            "runserver",
            "--noreload",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(),
    )
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        assert process.poll() is None, "runserver exited"
        try:
            return requests.get(url + "api/status", timeout=2).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=30, what="runserver to answer")
        with requests.get(url + "video.mjpg", stream=True, timeout=30) as video:
            assert video.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            first, second = two_jpegs(video.iter_content(64 * 1024))
        assert decode_image(first).shape == (720, 1280, 3) and first != second
        status = requests.get(url + "api/status", timeout=10).json()
        assert status["state"] == "generating" and status["session_id"]
    finally:
        process.terminate()
        process.communicate(timeout=20)
