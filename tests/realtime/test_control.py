"""Control calls: prompts and images change the output, acks never cross, errors are typed."""

from __future__ import annotations

import base64
import concurrent.futures
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from _support.pictures import still_frames
from _support.sessions import FAST_RECONNECT, SMALL_LUCY

from decart_sync import (
    DecartClient,
    DecartSDKError,
    DecartTimeoutError,
    InvalidInputError,
    LoopThreadError,
    SetInput,
)
from decart_sync.emulator import Emulator
from decart_sync.realtime import RealtimeClient, ReconnectPolicy
from decart_sync.testing import wait_until


def solid_png(bgr: tuple[int, int, int], size: int = 64) -> bytes:
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = bgr
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = size, size, "rgb24"
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


def mean_bgr(session: RealtimeClient) -> np.ndarray:
    with session.frames() as frames:
        frame = frames.get(timeout=10, fresh=True)
    return frame.reshape(-1, 3).mean(axis=0)


def eventually_differs(session: RealtimeClient, reference: np.ndarray, amount: float) -> np.ndarray:
    """Frames already in flight may predate the change: wait for one that shows it."""
    result: list[np.ndarray] = []

    def changed() -> bool:
        result.append(mean_bgr(session))
        return float(np.abs(result[-1] - reference).mean()) > amount

    wait_until(changed, timeout=10, what="the output to change")
    return result[-1]


@pytest.fixture
def session(client: DecartClient) -> Iterator[RealtimeClient]:
    s = client.realtime.connect(SMALL_LUCY, still_frames())
    s.wait_for_state("generating", timeout=10)
    yield s
    s.disconnect()


def test_prompt_change_visibly_changes_received_pixels(
    session: RealtimeClient, emulator: Emulator
) -> None:
    plain = mean_bgr(session)
    session.set_prompt("negative")
    assert emulator.sessions()[0].prompt == "negative"
    inverted = eventually_differs(session, plain, 40)
    # An inverted picture has (about) the complementary mean.
    assert np.allclose(inverted, 255 - plain, atol=25)


def test_set_replaces_the_whole_state(session: RealtimeClient, emulator: Emulator) -> None:
    session.set(SetInput(prompt="sepia", image=solid_png((0, 0, 255))))
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image) == ("sepia", True)
    session.set(SetInput(prompt="noir"))  # the image is left out, so it is cleared
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image) == ("noir", False)
    session.set(SetInput(image=solid_png((255, 0, 0))))  # and now the prompt is
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image) == (None, True)


def test_set_image_keeps_the_prompt_unless_given(
    session: RealtimeClient, emulator: Emulator, tmp_path: Path
) -> None:
    session.set_prompt("cartoon")
    path = tmp_path / "ref.png"
    path.write_bytes(solid_png((0, 255, 0)))
    session.set_image(path)
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image) == ("cartoon", True)
    session.set_image(str(path), prompt="noir")
    assert emulator.sessions()[0].prompt == "noir"
    session.set_image(None)
    assert emulator.sessions()[0].has_image is False


def test_reference_image_moves_colours_toward_it(session: RealtimeClient) -> None:
    plain = mean_bgr(session)
    session.set(SetInput(image=solid_png((20, 20, 230))))  # a red reference (BGR)
    tinted = eventually_differs(session, plain, 10)
    assert tinted[2] - tinted[0] > plain[2] - plain[0]  # redder relative to blue than before


def test_every_image_form_is_accepted(
    session: RealtimeClient, emulator: Emulator, tmp_path: Path
) -> None:
    png = solid_png((10, 200, 10))
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    array = np.full((32, 32, 3), 90, np.uint8)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-images")
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ref.png"
        for image in (png, bytearray(png), data_url, url, array):
            session.set(SetInput(prompt="noir", image=image))
            assert emulator.sessions()[0].has_image
            session.set(SetInput(prompt="noir"))
            assert not emulator.sessions()[0].has_image
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda s: s.set_prompt(""), "empty or blank"),
        (lambda s: s.set_prompt("   "), "empty or blank"),
        (lambda s: s.set(SetInput(prompt="x", image="aGVsbG8=")), "raw base64"),
        (lambda s: s.set(SetInput(prompt="x", image="/no/such/file.png")), "not an existing"),
        (lambda s: s.set("anime"), "SetInput"),
        (lambda s: s.set_image(np.zeros((4, 4), np.uint8)), "HxWx3"),
        (lambda s: s.set_image(np.zeros((0, 0, 3), np.uint8)), "at least one pixel"),
        (lambda s: s.set_prompt("x", timeout=0), "timeout"),
        (lambda s: s.set_prompt("x", timeout=float("inf")), "finite"),
        (lambda s: s.set_prompt("x", timeout=float("nan")), "finite"),
        (lambda s: s.set(SetInput(prompt="x"), timeout=-1), "timeout"),
        (lambda s: s.wait_for_state("generating", timeout=float("nan")), "finite"),
        (lambda s: s.wait_for_state("generating", timeout=float("inf")), "finite"),
        (lambda s: s.read(timeout=float("inf")), "finite"),
        (lambda s: s.frames().get(timeout=float("nan")), "finite"),
        (lambda s: s.stats(timeout=float("inf")), "finite"),
    ],
)
def test_bad_input_is_a_clear_error_and_the_session_stays_usable(
    session: RealtimeClient, emulator: Emulator, call: Any, fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        call(session)
    session.set_prompt("sketch")
    assert emulator.sessions()[0].prompt == "sketch"


def test_undecodable_image_is_refused_by_the_server_and_state_kept(
    session: RealtimeClient, emulator: Emulator
) -> None:
    session.set_prompt("cartoon")
    with pytest.raises(Exception, match="(?i)image") as info:
        session.set(SetInput(prompt="noir", image=b"definitely not an image"))
    assert isinstance(info.value, InvalidInputError)
    assert info.value.message.count("invalid image") == 1
    assert emulator.sessions()[0].prompt == "cartoon"
    session.set_prompt("noir")


def test_eight_threads_setting_prompts_each_get_their_own_ack(
    session: RealtimeClient, emulator: Emulator
) -> None:
    prompts = [f"style number {i}" for i in range(8)]
    barrier = threading.Barrier(8)

    def worker(prompt: str) -> str:
        barrier.wait(5)
        session.set_prompt(prompt, timeout=15)
        return prompt

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        done = list(pool.map(worker, prompts))
    assert done == prompts
    assert emulator.sessions()[0].prompt in prompts


def test_ack_timeout_is_typed_and_the_session_recovers(
    session: RealtimeClient, emulator: Emulator
) -> None:
    emulator.withhold_acks()
    with pytest.raises(DecartTimeoutError, match="0.5s"):
        session.set_prompt("noir", timeout=0.5)
    emulator.clear_faults()
    session.set_prompt("sketch")
    assert emulator.sessions()[0].prompt == "sketch"


def test_non_blocking_forms_return_futures(session: RealtimeClient, emulator: Emulator) -> None:
    future = session.set_prompt("noir", wait=False)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(15) is None
    assert emulator.sessions()[0].prompt == "noir"
    image_future = session.set_image(solid_png((1, 2, 3)), wait=False)
    image_future.result(30)
    assert emulator.sessions()[0].has_image


def test_blocking_calls_from_callbacks_are_safe_and_from_the_loop_are_errors(
    session: RealtimeClient, emulator: Emulator
) -> None:
    done = threading.Event()

    def on_tick(_: object) -> None:
        if not done.is_set():
            session.set_prompt("cartoon")  # a blocking call inside a callback
            done.set()

    session.on("generation_tick", on_tick)
    assert done.wait(10)
    assert emulator.sessions()[0].prompt == "cartoon"

    async def on_the_loop() -> str:
        try:
            session.set_prompt("noir")
        except LoopThreadError as exc:
            return exc.message
        return "no error"

    assert "deadlock" in session._loop_thread.run(on_the_loop(), 5)


def test_a_late_rejection_is_not_credited_to_the_next_set(
    session: RealtimeClient, emulator: Emulator
) -> None:
    """The first set times out; its rejection arrives while the second waits for its own ack."""
    emulator.delay_acks(1.0)
    with pytest.raises(DecartTimeoutError):
        session.set(SetInput(prompt="noir", image=b"not an image"), timeout=0.3)
    session.set(SetInput(prompt="cartoon", image=solid_png((0, 200, 0))), timeout=10)
    info = emulator.sessions()[0]
    assert (info.prompt, info.has_image) == ("cartoon", True)


def test_a_late_success_becomes_the_state_a_reconnect_restores(
    client: DecartClient, emulator: Emulator
) -> None:
    """The first set times out but is applied; the next one is refused: the session's
    acknowledged state is the first, and a reconnect restores it without an error."""
    session = client.realtime.connect(
        SMALL_LUCY, still_frames(), reconnect=ReconnectPolicy(**FAST_RECONNECT)
    )
    errors: list[Exception] = []
    session.on("error", errors.append)
    try:
        session.wait_for_state("generating", timeout=10)
        emulator.delay_acks(1.0)
        with pytest.raises(DecartTimeoutError):
            session.set(SetInput(prompt="neon", image=solid_png((200, 0, 0))), timeout=0.3)
        with pytest.raises(InvalidInputError):
            session.set(SetInput(prompt="noir", image=b"not an image"), timeout=10)
        emulator.clear_faults()
        old_id = session.session_id
        emulator.drop_websocket()
        wait_until(
            lambda: session.session_id != old_id and session.get_connection_state() == "generating",
            20,
            "the session reconnected",
        )
        info = next(s for s in emulator.sessions() if s.session_id == session.session_id)
        assert (info.prompt, info.has_image) == ("neon", True)
        assert not errors
    finally:
        session.disconnect()


def test_errors_say_which_session_and_phase_they_come_from(
    session: RealtimeClient, emulator: Emulator, client: DecartClient
) -> None:
    emulator.withhold_acks()
    with pytest.raises(DecartTimeoutError) as timed_out:
        session.set_prompt("noir", timeout=0.3)
    assert (timed_out.value.session_id, timed_out.value.phase) == (session.session_id, "control")
    assert f"[session {session.session_id}, control]" in str(timed_out.value)
    emulator.clear_faults()
    with pytest.raises(InvalidInputError) as refused:
        session.set(SetInput(prompt="noir", image=b"not an image"))
    assert refused.value.phase == "control" and "invalid image" in refused.value.message
    emulator.reject_next(1, "Invalid API key")
    with pytest.raises(DecartSDKError) as failed:
        client.realtime.connect(SMALL_LUCY, still_frames())
    assert (failed.value.session_id, failed.value.phase) == (None, "connect")
    assert "[no session yet, connect]" in str(failed.value)
