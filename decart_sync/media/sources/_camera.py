"""A live camera as a source, opened through PyAV with each platform's capture API; every frame
sent is the newest the device has."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import av
import av.container

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._base import VideoSource, check_positive_int
from decart_sync.media.sources._feed import EndOfStream, Pacing, SourceFailed
from decart_sync.media.sources._file import close_input, open_input
from decart_sync.media.sources._pull import PullSource

__all__ = ["CameraSource", "camera"]

# A camera that delivers nothing for this long is treated as gone.
CAMERA_STALL = 5.0
# How often to look again when a non-blocking camera has no frame ready.
CAMERA_POLL = 0.002
# At most this many queued camera packets are read per frame sent, so an input that never says
# "nothing more for now" (one that ignores non-blocking mode) cannot hold a read forever.
CAMERA_DRAIN_LIMIT = 16
# A packet that took longer than this to arrive was waited for, so it is the newest there is.
CAMERA_FRESH = 0.004


class CameraSource(PullSource):
    """A live device opened through PyAV; each frame sent is the newest the device has."""

    def __init__(self, url: str, *, format: str | None, options: dict[str, str]) -> None:
        # Read when its frame is due, so what goes out is the newest the device has.
        super().__init__(f"camera {url!r}", pacing=Pacing.WHEN_DUE)
        # Non-blocking reads let a read drain what the device queued and keep only the newest,
        # so a device faster than the model never builds up latency. v4l2 needs the flag when
        # the device is opened; an input that refuses it is opened again without it.
        try:
            self._container, self._stream = open_input(
                url, what=self._name, format=format, options={"fflags": "nonblock", **options}
            )
        except InvalidInputError:
            self._container, self._stream = open_input(
                url, what=self._name, format=format, options=options
            )
        # avfoundation and dshow look at the flag on each read, so it still helps after opening.
        self._container.flags |= cast(int, av.container.Flags.non_block.value)
        self._packets: Iterator[av.Packet[Any]] = self._container.demux(self._stream)

    def _read(self, fps: int) -> object:
        newest: av.VideoFrame | None = None
        drained = 0
        deadline = time.monotonic() + CAMERA_STALL
        while True:
            if self._closed:
                raise EndOfStream
            if time.monotonic() > deadline:
                raise SourceFailed(
                    InvalidInputError(f"{self._name} delivered no frame for {CAMERA_STALL} s")
                )
            started = time.monotonic()
            try:
                packet = next(self._packets)
            except BlockingIOError:
                # A failed read ends PyAV's demux generator; the next read needs a new one.
                self._packets = self._container.demux(self._stream)
                if newest is not None:
                    return newest
                time.sleep(CAMERA_POLL)
                continue
            except StopIteration:
                raise SourceFailed(
                    InvalidInputError(f"{self._name} stopped (was it unplugged?)")
                ) from None
            waited = time.monotonic() - started > CAMERA_FRESH
            drained += 1
            for frame in packet.decode():
                newest = frame
            if newest is not None and (waited or drained >= CAMERA_DRAIN_LIMIT):
                return newest

    def _release(self) -> None:
        close_input(self._container, self._packets)


def camera_input(
    device: int | str, fps: int | None, size: tuple[int, int] | None
) -> tuple[str, str, dict[str, str]]:
    """The PyAV (url, format, options) that open ``device`` on this platform."""
    options: dict[str, str] = {}
    if fps is not None:
        options["framerate"] = str(fps)
    if size is not None:
        options["video_size"] = f"{size[0]}x{size[1]}"
    if sys.platform.startswith("linux"):
        url = f"/dev/video{device}" if isinstance(device, int) else device
        if not os.path.exists(url):
            raise InvalidInputError(f"no camera at {url!r}: the device does not exist")
        return url, "v4l2", options
    if sys.platform == "darwin":
        # avfoundation takes "video:audio"; we never want the microphone.
        url = f"{device}:none" if isinstance(device, int) or ":" not in device else device
        # Without a rate avfoundation asks for 29.97, which many cameras refuse.
        options.setdefault("framerate", "30")
        return url, "avfoundation", options
    if sys.platform == "win32":
        if isinstance(device, int):
            names = [
                info.name
                for info in av.device.enumerate_input_devices("dshow")
                if "video" in info.media_types
            ]
            if device >= len(names):
                raise InvalidInputError(
                    f"no camera number {device}: found {len(names)} ({', '.join(names) or 'none'})"
                )
            return f"video={names[device]}", "dshow", options
        return (device if device.startswith("video=") else f"video={device}"), "dshow", options
    raise InvalidInputError(f"camera() supports Linux, macOS and Windows, not {sys.platform}")


def camera(
    device: int | str = 0,
    *,
    fps: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> VideoSource:
    """A live camera through PyAV: v4l2 on Linux (``0`` is ``/dev/video0``; a path works too),
    avfoundation on macOS (an index or a device name), dshow on Windows (an index or a name).

    ``fps``, ``width`` and ``height`` ask the device for a mode; frames are resized to the
    model's size in any case. The device is opened here, in the calling thread; a missing or
    busy device raises ``InvalidInputError`` naming it.
    """
    if isinstance(device, bool) or not isinstance(device, (int, str)):
        raise InvalidInputError(f"camera device must be an int or a str, got {device!r}")
    if isinstance(device, int) and device < 0:
        raise InvalidInputError(f"camera device number must be >= 0, got {device}")
    if fps is not None:
        check_positive_int("fps", fps)
    if (width is None) != (height is None):
        raise InvalidInputError("give camera width and height together, or neither")
    size = None
    if width is not None and height is not None:
        size = (check_positive_int("width", width), check_positive_int("height", height))
    url, input_format, options = camera_input(device, fps, size)
    return CameraSource(url, format=input_format, options=options)
