"""A video file as a source, decoded with PyAV off the loop thread, in real time or frame by
frame, once or looping."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from typing import Any

import av
import av.container

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._base import VideoSource
from decart_sync.media.sources._feed import EndOfStream
from decart_sync.media.sources._pull import PullSource

__all__ = ["FileSource", "close_input", "open_input", "video_file"]


def open_input(
    url: str, *, what: str, format: str | None = None, options: dict[str, str] | None = None
) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``url`` with PyAV and find its video stream, or raise InvalidInputError."""
    try:
        container = av.open(url, mode="r", format=format, options=options, timeout=(10.0, None))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise InvalidInputError(f"cannot open {what}: {error}") from error
    if not container.streams.video:
        container.close()
        raise InvalidInputError(f"{what} has no video stream")
    return container, container.streams.video[0]


def close_input(container: av.container.InputContainer, reader: Iterator[Any]) -> None:
    """Close a container and the decode or demux generator reading it (the generator first,
    so it never reads from a closed container)."""
    close = getattr(reader, "close", None)
    if callable(close):
        close()
    container.close()


class FileSource(PullSource):
    """A video file decoded with PyAV, in real time or frame by frame."""

    def __init__(self, path: pathlib.Path, *, loop: bool, realtime: bool) -> None:
        super().__init__(f"video file {str(path)!r}")
        self._path = path
        self._repeat = loop
        self._realtime = realtime
        self._open()
        self._frames: Iterator[av.VideoFrame] = self._container.decode(self._stream)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self._frame_duration = float(1 / rate) if rate else 1 / 30
        # Real-time playback state: file time (seconds into this pass) of the next output
        # frame, the frame on screen at that time, and the one decoded after it.
        self._position = 0.0
        self._origin: float | None = None
        self._decoded = 0
        self._held: av.VideoFrame | None = None
        self._held_time = 0.0
        self._pending: av.VideoFrame | None = None
        self._pending_time = 0.0

    def _open(self) -> None:
        self._container, self._stream = open_input(str(self._path), what=self._name)
        # Frame threading decodes faster; the latency it adds does not matter for a file.
        self._stream.thread_type = "AUTO"

    def _decode_next(self) -> tuple[av.VideoFrame, float] | None:
        """The next frame and its time from the start of this pass, or None at the end."""
        frame = next(self._frames, None)
        if frame is None:
            return None
        stamp = frame.time
        if stamp is None:  # no timestamps: assume the nominal rate
            stamp = self._decoded * self._frame_duration
        if self._origin is None:
            self._origin = stamp
        self._decoded += 1
        return frame, stamp - self._origin

    def _rewind(self) -> None:
        try:
            self._container.seek(0)
        except (av.FFmpegError, OSError):
            # Not seekable: opening again gets back to the start.
            self._container.close()
            self._open()
        self._frames = self._container.decode(self._stream)
        self._origin = None
        self._decoded = 0

    def _read(self, fps: int) -> object:
        if not self._realtime:
            return self._read_next()
        target = self._position
        self._position += 1 / fps
        while True:
            if self._pending is None:
                decoded = self._decode_next()
                if decoded is None:
                    if self._held is None:
                        raise EndOfStream  # a file without a single frame
                    pass_length = self._held_time + self._frame_duration
                    if target < pass_length - 1e-6:
                        break  # the last frame is still on screen
                    if not self._repeat:
                        raise EndOfStream
                    self._rewind()
                    self._position -= pass_length
                    target -= pass_length
                    continue
                self._pending, self._pending_time = decoded
            if self._held is None or self._pending_time <= target + 1e-6:
                self._held, self._held_time = self._pending, self._pending_time
                self._pending = None
                continue
            break
        assert self._held is not None
        return self._held

    def _read_next(self) -> av.VideoFrame:
        decoded = self._decode_next()
        if decoded is None and self._repeat and self._decoded > 0:
            self._rewind()
            decoded = self._decode_next()
        if decoded is None:
            raise EndOfStream
        return decoded[0]

    def _release(self) -> None:
        close_input(self._container, self._frames)


def video_file(
    path: str | os.PathLike[str], *, loop: bool = False, realtime: bool = True
) -> VideoSource:
    """A video file, decoded with PyAV off the loop thread.

    With ``realtime=True`` the file plays at its own speed whatever the model's frame rate
    (frames repeat or are skipped to match); with ``realtime=False`` each model frame takes the
    next file frame. ``loop=True`` starts again at the end; otherwise the track ends there.
    Raises ``InvalidInputError`` if the file is missing or holds no readable video.
    """
    try:
        resolved = pathlib.Path(os.fspath(path))
    except TypeError:
        raise InvalidInputError(
            f"a video file path must be a str or os.PathLike, got {type(path).__name__}"
        ) from None
    if not resolved.exists():
        raise InvalidInputError(f"video file not found: {str(resolved)!r}")
    if not resolved.is_file():
        raise InvalidInputError(f"not a video file: {str(resolved)!r}")
    return FileSource(resolved, loop=loop, realtime=realtime)
