"""SharedSession, as a web app uses it, against a real emulator in this process: many request
threads share one session opened on first use; an ended session is replaced with the state the
visitors set; a forked worker opens its own; close() starts afresh; the MJPEG stream works."""

from __future__ import annotations

import concurrent.futures
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from _support.sessions import client_of

from decart_sync import DecartClient, InvalidInputError, ServerAtCapacityError
from decart_sync.emulator import Emulator
from decart_sync.media import VideoSource, encode_jpeg, test_pattern
from decart_sync.realtime import RealtimeClient, ReconnectPolicy
from decart_sync.web import SharedSession

MODEL = "lucy-2.1"
# For a deadline on anything that may block: a join, a pipe, a frame.
DEADLINE = 30.0


class ClientFactory:
    """Makes clients of the test's emulator, and keeps them to count them and close them."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.made: list[DecartClient] = []

    def __call__(self) -> DecartClient:
        client = client_of(self.emulator)
        self.made.append(client)
        return client


@pytest.fixture
def clients(emulator: Emulator) -> Iterator[ClientFactory]:
    factory = ClientFactory(emulator)
    yield factory
    for client in factory.made:
        client.close()


@pytest.fixture
def sources() -> list[VideoSource]:
    """The inputs the test's SharedSession made, in order."""
    return []


@pytest.fixture
def shared_factory(
    clients: ClientFactory, sources: list[VideoSource]
) -> Iterator[Callable[..., SharedSession]]:
    """``shared(**options)``: a SharedSession of the test's emulator, closed after the test."""
    made: list[SharedSession] = []

    def make_source() -> VideoSource:
        sources.append(test_pattern())
        return sources[-1]

    def shared(**options: Any) -> SharedSession:
        options.setdefault("prompt", "noir")
        made.append(SharedSession(MODEL, make_source, client_factory=clients, **options))
        return made[-1]

    yield shared
    for holder in made:
        holder.close()


def open_session_ids(emulator: Emulator) -> list[str]:
    return [info.session_id for info in emulator.sessions()]


def red_jpeg() -> bytes:
    image = np.zeros((64, 64, 3), np.uint8)
    image[:] = (0, 0, 255)  # BGR
    return encode_jpeg(image)


def test_nothing_is_opened_until_a_request_needs_the_session(
    shared_factory: Callable[..., SharedSession], clients: ClientFactory, emulator: Emulator
) -> None:
    shared = shared_factory()
    assert shared.current() is None
    assert shared.status() == {"state": "disconnected", "session_id": None, "prompt": "noir"}
    assert clients.made == [] and emulator.sessions() == []

    session = shared.session()
    session.wait_for_state("generating", timeout=DEADLINE)
    status = shared.status()
    assert status["state"] == "generating" and status["session_id"] == session.session_id
    assert status["prompt"] == "noir" and status["viewers"] == 0
    assert status["stats"]["state"] == "generating"
    assert shared.current() is session
    assert open_session_ids(emulator) == [session.session_id]


def test_a_bad_mjpeg_rate_is_refused_before_anything_opens(clients: ClientFactory) -> None:
    with pytest.raises(InvalidInputError, match="mjpeg_fps"):
        SharedSession(MODEL, test_pattern, client_factory=clients, mjpeg_fps=0)
    assert clients.made == []


def test_concurrent_first_requests_share_one_session(
    shared_factory: Callable[..., SharedSession], clients: ClientFactory, emulator: Emulator
) -> None:
    shared = shared_factory()
    visitors = 8
    start = threading.Barrier(visitors)
    got: list[RealtimeClient] = []

    def visit() -> None:
        start.wait(DEADLINE)  # all ask at once, before any session exists
        got.append(shared.session())

    threads = [threading.Thread(target=visit, name=f"request-{n}") for n in range(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads)

    assert len(got) == visitors and all(session is got[0] for session in got)
    assert len(clients.made) == 1
    (info,) = emulator.sessions()
    assert info.session_id == got[0].session_id
    assert info.prompt == "noir"


def test_an_ended_session_is_replaced_and_starts_with_the_state_visitors_set(
    shared_factory: Callable[..., SharedSession],
    clients: ClientFactory,
    sources: list[VideoSource],
    emulator: Emulator,
) -> None:
    # No reconnects: a dropped connection ends the session for good.
    shared = shared_factory(reconnect=ReconnectPolicy(attempts=0))
    shared.set_prompt("negative")  # opens the session, then applies the prompt
    shared.set_image(red_jpeg())
    first, first_broadcaster = shared.session(), shared.broadcaster()
    assert shared.prompt == "negative"

    emulator.drop_websocket(first.session_id)
    first.wait_for_state("disconnected", timeout=DEADLINE)
    assert shared.current() is first  # describing does not replace it ...
    assert shared.status()["state"] == "disconnected"

    second = shared.session()  # ... using it does
    assert second is not first and second.session_id != first.session_id
    assert shared.broadcaster() is not first_broadcaster and first_broadcaster.closed
    assert len(clients.made) == 1  # the client is kept; only the session is new
    assert len(sources) == 2 and sources[0].closed and not sources[1].closed
    emulator.wait_for(lambda emu: open_session_ids(emu) == [second.session_id], DEADLINE)
    (info,) = emulator.sessions()
    assert info.prompt == "negative" and info.has_image


def test_close_ends_everything_and_the_next_use_starts_afresh(
    shared_factory: Callable[..., SharedSession],
    clients: ClientFactory,
    sources: list[VideoSource],
    emulator: Emulator,
) -> None:
    shared = shared_factory()
    shared.set_prompt("negative")
    first, first_client = shared.session(), shared.client()

    shared.close()
    assert first.get_connection_state() == "disconnected" and first_client.closed
    assert sources[0].closed
    assert shared.current() is None and shared.prompt == "noir"  # the set prompt is forgotten
    emulator.wait_for(lambda emu: emu.sessions() == [], DEADLINE)

    second = shared.session()
    assert second is not first and shared.client() is not first_client
    assert len(clients.made) == 2
    (info,) = emulator.sessions()
    assert info.session_id == second.session_id and info.prompt == "noir"


def test_a_failed_open_leaves_nothing_open_and_the_next_request_tries_again(
    shared_factory: Callable[..., SharedSession],
    sources: list[VideoSource],
    emulator: Emulator,
) -> None:
    # One try only, so that the service being full once makes the open fail.
    shared = shared_factory(reconnect=ReconnectPolicy(attempts=1))
    emulator.reject_next(1)
    with pytest.raises(ServerAtCapacityError):
        shared.session()
    assert shared.current() is None and sources[0].closed  # a camera would be released

    session = shared.session()
    assert open_session_ids(emulator) == [session.session_id]
    assert len(sources) == 2 and not sources[1].closed


def test_the_broadcaster_streams_the_session_as_jpeg_parts(
    shared_factory: Callable[..., SharedSession], emulator: Emulator
) -> None:
    shared = shared_factory()
    broadcaster = shared.broadcaster()  # opens the session too
    assert shared.broadcaster() is broadcaster and shared.current() is not None
    assert broadcaster.content_type == "multipart/x-mixed-replace; boundary=frame"

    stream = broadcaster.viewer()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            parts = pool.submit(lambda: [next(stream), next(stream)]).result(DEADLINE)
        finally:
            shared.close()  # ends the stream, so the pool can exit even if that failed
    for part in parts:
        head, _, jpeg = part.partition(b"\r\n\r\n")
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n")
        assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9\r\n")
    assert parts[0] != parts[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_worker_opens_its_own_session_and_leaves_the_parents_alone(
    shared_factory: Callable[..., SharedSession], clients: ClientFactory, emulator: Emulator
) -> None:
    """What gunicorn does with --preload, had the app been used before forking its workers."""
    shared = shared_factory()
    parent = shared.session()
    parent.wait_for_state("generating", timeout=DEADLINE)

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: report what it got, then leave without any cleanup
        try:
            child = shared.session()
            report = f"{child is parent} {child.session_id} {len(clients.made)}"
        except BaseException as exc:
            report = f"error {exc!r}"
        os.write(write_fd, report.encode())
        os._exit(0)

    os.close(write_fd)
    try:
        readable, _, _ = select.select([read_fd], [], [], DEADLINE)
        assert readable, f"the forked child did not report within {DEADLINE}s"
        report = os.read(read_fd, 4096).decode()
    finally:
        os.close(read_fd)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    is_parent, child_session_id, clients_made = report.split()
    assert is_parent == "False", report
    assert child_session_id not in (parent.session_id, "None")
    assert clients_made == "2"  # the child made a client of its own
    # The parent's session and its threads were left alone: still live, still controllable.
    assert parent.get_connection_state() == "generating"
    assert shared.session() is parent
    shared.set_prompt("negative")
    assert [s.prompt for s in emulator.sessions() if s.session_id == parent.session_id] == [
        "negative"
    ]
