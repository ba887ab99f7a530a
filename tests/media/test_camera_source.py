"""camera(): a missing device is a clear, quick error; the device read path works on a live input.

This machine has no camera, so the reading side is exercised with FFmpeg's lavfi test source
opened through the same class camera() uses.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time

import av
import pytest
from _source_helpers import run, take

from decart_sync.errors import InvalidInputError
from decart_sync.media import camera
from decart_sync.media.sources._camera import CameraSource

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2 paths")


@linux_only
@pytest.mark.parametrize("device", ["/dev/video99", 99])
def test_a_missing_camera_is_named_quickly(device: int | str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInputError, match="/dev/video99"):
        camera(device)
    assert time.monotonic() - started < 5


@linux_only
def test_a_device_that_is_not_a_camera_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="/dev/null"):
        camera("/dev/null")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"device": -1}, "device number"),
        ({"device": True}, "int or a str"),
        ({"device": 1.5}, "int or a str"),
        ({"width": 640}, "width and height together"),
        ({"fps": 0}, "fps"),
        ({"width": 640, "height": -480}, "height"),
    ],
)
def test_camera_arguments_are_checked(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        camera(**arguments)  # type: ignore[arg-type]


# A live input that, like a camera, makes its reader wait for each next frame.
LIVE_INPUT = "testsrc=size=320x240:rate={rate},realtime"


def test_a_live_input_is_sent_at_the_models_size_and_released(
    executor: concurrent.futures.Executor,
) -> None:
    source = CameraSource(LIVE_INPUT.format(rate=30), format="lavfi", options={})
    container = source._container

    async def receive() -> list[av.VideoFrame]:
        track = source.open_track(width=64, height=48, fps=30, executor=executor)
        return await take(track, 3)

    frames = run(receive())
    assert [(f.width, f.height, f.format.name) for f in frames] == [(64, 48, "yuv420p")] * 3
    source.close()
    with pytest.raises(AssertionError, match="not open"):  # PyAV's word for a closed input
        next(container.demux())


def test_each_slot_takes_the_newest_frame_the_device_has() -> None:
    """lavfi ignores non-blocking mode, so the source tells a queued frame from a fresh one by
    how long the read took; a descheduled reader on a busy machine can misjudge one read, so the
    scenario gets three tries, and one must skip the queue."""
    skipped = []
    for _ in range(3):
        source = CameraSource(LIVE_INPUT.format(rate=60), format="lavfi", options={})
        try:
            first = source._read(15)
            time.sleep(0.1)  # the model is slower than the device: six device frames go by
            second = source._read(15)
        finally:
            source.close()
        assert isinstance(first, av.VideoFrame) and isinstance(second, av.VideoFrame)
        assert first.pts is not None and second.pts is not None
        skipped.append(second.pts - first.pts)
        if skipped[-1] >= 4:  # queued frames were skipped, not sent late
            break
    assert max(skipped) >= 4, skipped


class ScriptedDevice:
    """Stands in for a non-blocking device: each demux() plays one script of packets, where
    ``AGAIN`` means "nothing ready yet" (EAGAIN), which ends that demux generator as PyAV does."""

    AGAIN = object()

    def __init__(self, *scripts: list[object]) -> None:
        self.scripts = list(scripts)
        self.closed = False

    def demux(self, *streams: object) -> object:
        script = self.scripts.pop(0) if self.scripts else [self.AGAIN]

        def play() -> object:
            for item in script:
                if item is self.AGAIN:
                    raise BlockingIOError("Resource temporarily unavailable")
                yield item

        return play()

    def close(self) -> None:
        self.closed = True


def test_a_non_blocking_device_is_drained_to_its_newest_frame() -> None:
    still = LIVE_INPUT.format(rate=30).replace(",realtime", "")
    with av.open(still, format="lavfi") as lavfi:
        packets = [p for _, p in zip(range(3), lavfi.demux(video=0), strict=False)]
        source = CameraSource(still, format="lavfi", options={})
        source._container.close()
        again = ScriptedDevice.AGAIN
        device = ScriptedDevice(
            [again],  # nothing ready yet: look again
            [packets[0], packets[1], packets[2], again],  # three queued: only the newest goes
        )
        source._container = device  # type: ignore[assignment]
        source._packets = device.demux()  # type: ignore[assignment]
        frame = source._read(30)
        assert isinstance(frame, av.VideoFrame)
        assert frame.pts == packets[2].pts
        assert device.scripts == []  # every "nothing ready" started a new demux, as PyAV needs
        source.close()
        assert device.closed
