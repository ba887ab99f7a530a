"""The video itself: frames come back at the model's size and rate, transformed as the state
says, over VP8 or H.264, and viewers see what the producer sees."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import pytest
from _support.pictures import pattern
from rawclient import INPUT_SIZE, MediaLoop, RawClient, solid_png

from decart_sync.emulator import Emulator

Connect = Callable[..., RawClient]

# Mean absolute difference (0-255) between what came back and what went in. Passthrough only
# loses what scaling up, the codec and scaling down lose; an effect changes far more.
PASSTHROUGH_TOLERANCE = 12.0
EFFECT_MINIMUM = 30.0


def _difference(client: RawClient, picture: np.ndarray) -> float:
    received = client.latest_rgb(INPUT_SIZE).astype(np.int16)
    return float(np.abs(received - picture.astype(np.int16)).mean())


def _wait_for_look(
    client: RawClient, predicate: Callable[[float], bool], picture: np.ndarray
) -> float:
    """Wait until the difference to ``picture`` satisfies ``predicate`` (the codec needs a few
    frames to converge after a change); returns the difference."""
    last = [float("nan")]

    def settled() -> bool:
        if client.latest_frame is None:
            return False
        last[0] = _difference(client, picture)
        return predicate(last[0])

    try:
        client.wait(settled, what="the expected picture")
    except AssertionError:
        raise AssertionError(f"the picture never settled; last difference {last[0]:.1f}") from None
    return last[0]


def test_passthrough_returns_the_input_scaled_to_the_model_size(connect: Connect) -> None:
    picture = pattern(*INPUT_SIZE)
    client = connect(model="lucy-2.1")
    client.set_image(None, prompt=None)
    client.negotiate(picture)
    frame = client.wait_frames(5)
    assert (frame.width, frame.height) == (1280, 720)
    _wait_for_look(client, lambda d: d < PASSTHROUGH_TOLERANCE, picture)


def test_a_style_changes_the_pixels_and_passthrough_restores_them(
    emulator: Emulator, connect: Connect
) -> None:
    picture = pattern(*INPUT_SIZE)
    client = connect()
    client.set_prompt("negative")
    client.negotiate(picture)
    client.wait_frames(3)
    _wait_for_look(client, lambda d: d > EFFECT_MINIMUM, picture)
    # It really is the negative: inverting it back gives the picture.
    _wait_for_look(client, lambda d: d < PASSTHROUGH_TOLERANCE, 255 - picture)

    assert client.set_image(None, prompt=None)["success"]
    assert emulator.sessions()[0].effect == "passthrough"
    _wait_for_look(client, lambda d: d < PASSTHROUGH_TOLERANCE, picture)


def test_a_prompt_without_a_style_still_grades_the_picture(connect: Connect) -> None:
    picture = pattern(*INPUT_SIZE)
    client = connect()
    client.set_prompt("a quiet harbour at noon")
    client.negotiate(picture)
    client.wait_frames(3)
    _wait_for_look(client, lambda d: d > 8.0, picture)


def test_a_solid_colour_reference_image_shifts_the_colours_towards_it(connect: Connect) -> None:
    picture = pattern(*INPUT_SIZE)
    client = connect()
    client.set_image(None, prompt=None)
    client.negotiate(picture)
    client.wait_frames(3)
    _wait_for_look(client, lambda d: d < PASSTHROUGH_TOLERANCE, picture)
    before = client.latest_rgb().reshape(-1, 3).mean(axis=0)

    green = base64.b64encode(solid_png((20, 220, 30))).decode()
    assert client.set_image(green)["success"]

    def greener() -> bool:
        after = client.latest_rgb().reshape(-1, 3).mean(axis=0)
        return bool(after[1] - before[1] > 25 and after[0] < before[0] - 15)

    client.wait(greener, what="a greener picture")


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_both_video_codecs_work(connect: Connect, codec: str) -> None:
    client = connect()
    client.set_prompt("sketch")
    answer = client.negotiate(codec=codec)
    rtpmaps = [line for line in answer["sdp"].splitlines() if line.startswith("a=rtpmap:")]
    assert any(codec in line.lower() for line in rtpmaps)
    assert not any(other in line.lower() for line in rtpmaps for other in {"vp8", "h264"} - {codec})
    frame = client.wait_frames(5)
    assert (frame.width, frame.height) == (1280, 720)


def test_frames_come_at_the_model_size_and_rate(emulator: Emulator, connect: Connect) -> None:
    client = connect(model="lucy-restyle-2")  # 1280x704 at 30 fps
    client.set_prompt("pixel art")
    client.negotiate()
    frame = client.wait_frames(12)
    assert (frame.width, frame.height) == (1280, 704)
    # 90 kHz timestamps, one frame period (3000) apart, give or take the receiver's rounding of
    # a third of a millisecond; a busy machine may skip whole periods.
    steps = np.diff(client.received_pts[-10:])
    periods = np.round(steps / 3000)
    assert (periods >= 1).all() and (np.abs(steps - periods * 3000) <= 1).all(), steps
    assert emulator.sessions()[0].effect == "pixel"


def test_viewers_receive_the_producer_video_and_cannot_change_it(
    emulator: Emulator, connect: Connect, media: MediaLoop
) -> None:
    picture = pattern(*INPUT_SIZE)
    producer = connect()
    producer.set_prompt("negative")
    producer.negotiate(picture)
    producer.wait_frames(3)
    session = producer.expect("session_id")

    viewers = [
        connect(url=RawClient.viewer_url(emulator.realtime_url, session, emulator.api_key))
        for _ in range(2)
    ]
    for viewer in viewers:
        viewer.negotiate(viewer=True)
    for viewer in viewers:
        frame = viewer.wait_frames(3)
        assert (frame.width, frame.height) == (1280, 720)
        _wait_for_look(viewer, lambda d: d < PASSTHROUGH_TOLERANCE * 1.5, 255 - picture)
    emulator.wait_for(lambda emu: emu.sessions()[0].subscribers == 2, timeout=10)

    # Read-only: control messages are refused and change nothing.
    viewers[0].send({"type": "prompt", "prompt": "sepia", "enhance_prompt": True})
    assert viewers[0].expect("error")["error"] == "Control messages are not allowed for subscribers"
    viewers[0].send({"type": "set_image", "image_data": None, "prompt": None})
    assert viewers[0].expect("error", 2)["error"] == (
        "Control messages are not allowed for subscribers"
    )
    assert viewers[0].of_type("prompt_ack") == [] and viewers[0].of_type("set_image_ack") == []
    info = emulator.sessions()[0]
    assert (info.prompt, info.effect) == ("negative", "negative")
    assert producer.of_type("error") == []
    producer.wait_frames(3)

    # A viewer leaving does not disturb the others; the producer leaving closes them.
    viewers[1].close()
    emulator.wait_for(lambda emu: emu.sessions()[0].subscribers == 1, timeout=10)
    viewers[0].wait_frames(2)
    producer.close()
    assert viewers[0].wait_closed().code == 1000
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
