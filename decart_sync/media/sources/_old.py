"""Video sources: what a user hands a session as its input, and how each one is read.

A :class:`VideoSource` lives in the blocking world (files, cameras, generators, a user's thread
pushing frames) and lends the session one aiortc track at a time through :meth:`open_track`.
Blocking reads run in the executor the session passes in, one at a time per source, never on the
loop thread; sources start no threads of their own. A source outlives a connection: after a
reconnect the new track carries on where the last one stopped.

Two families, by who sets the pace:

* pull sources (files, generators, ``read()`` captures, the test pattern, cameras) are read once
  per frame sent: a file or a generator is read ahead and waits for the model's rate, a camera
  or the pattern is read when its frame is due, and a live input's frame goes out as soon as the
  read returns it;
* latest-wins sources (:class:`PushSource`, a user's aiortc track) are filled by someone else at
  their own rate; a new frame goes out as soon as it arrives (at most at the model's rate), and
  the last one is repeated if nothing new comes for two frame intervals.

:func:`as_source` turns anything ``connect()`` accepts into a source.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import io
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from typing import Any, Literal, cast

import av
import av.container
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_sync._redact import get_logger
from decart_sync.errors import (
    DecartSDKError,
    InvalidInputError,
    LoopThreadError,
    SessionClosedError,
)
from decart_sync.media._source_track import (
    PIXEL_FORMATS,
    EndOfStream,
    SourceFailed,
    SourceTrack,
    frame_problem,
    fresh_frame,
    needs_conversion,
    to_track_frame,
)
from decart_sync.media.test_pattern import render_test_pattern

__all__ = [
    "CaptureSource",
    "IterableSource",
    "PushSource",
    "TrackSource",
    "VideoSource",
    "as_source",
    "camera",
    "test_pattern",
    "video_file",
]

logger = get_logger(__name__)

PixelFormat = Literal["bgr24", "rgb24"]

# close() waits this long for a read in progress before leaving the release to that reader.
_CLOSE_WAIT = 0.5
# A camera that delivers nothing for this long is treated as gone.
_CAMERA_STALL = 5.0
# How often to look again when a non-blocking camera has no frame ready.
_CAMERA_POLL = 0.002
# At most this many queued camera packets are read per frame sent, so an input that never says
# "nothing more for now" (one that ignores non-blocking mode) cannot hold a read forever.
_CAMERA_DRAIN_LIMIT = 16
# A packet that took longer than this to arrive was waited for, so it is the newest there is.
_CAMERA_FRESH = 0.004

_ACCEPTED = (
    "a VideoSource (camera(), video_file(), test_pattern(), PushSource()), an aiortc "
    "MediaStreamTrack of kind 'video', an iterable or generator of HxWx3 uint8 BGR numpy frames, "
    "an object with read() -> (ok, frame) such as cv2.VideoCapture, or a video file path"
)


def _on_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _call_on_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], None]) -> None:
    """Run ``callback`` on ``loop``'s thread: now if we are on it, soon otherwise."""
    if loop is None or loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback()
        return
    # RuntimeError: the loop closed in between, and nothing is left to stop.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def _check_pixel_format(pixel_format: str) -> None:
    if pixel_format not in PIXEL_FORMATS:
        raise InvalidInputError(
            f"pixel_format must be one of {sorted(PIXEL_FORMATS)}, got {pixel_format!r}"
        )


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
    return value


class VideoSource(abc.ABC):
    """Frames for a session's input, read from the blocking world.

    Give one to ``connect()`` (or anything :func:`as_source` accepts). The session calls
    :meth:`open_track` on its loop thread for each peer connection; :meth:`close` releases the
    device or file and ends the track. Sources are context managers.
    """

    # How a track paces this source (see FrameFeed): read ahead, then wait for the rate; read
    # once the rate allows (a live device, the pattern); or filled by others, sent on arrival.
    _reads_when_due = False
    _sends_on_arrival = False

    def __init__(self, name: str) -> None:
        self._name = name
        self._state_lock = threading.Lock()  # guards _closed, _track and _loop
        self._read_lock = threading.Lock()  # one blocking read at a time; release waits for it
        self._closed = False
        self._ended = False
        self._released = False
        self._frames_sent = 0
        self._track: SourceTrack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.Executor | None = None  # the last track's

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ended" if self._ended else "open"
        return f"<{type(self).__name__} {self._name} {state} frames_sent={self._frames_sent}>"

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def frames_sent(self) -> int:
        """Frames handed to tracks so far (a repeated frame counts each time it is sent)."""
        return self._frames_sent

    @property
    def ended(self) -> bool:
        """True once the source has no more frames: it ran out, failed, or was closed."""
        return self._ended

    @property
    def closed(self) -> bool:
        return self._closed

    def open_track(
        self,
        *,
        width: int,
        height: int,
        fps: int,
        executor: concurrent.futures.Executor | None,
        on_error: Callable[[DecartSDKError], None] | None = None,
    ) -> MediaStreamTrack:
        """A new aiortc video track of this source at ``width`` x ``height``, paced to ``fps``.

        Call on the loop thread that will run the track. Blocking reads and conversions run in
        ``executor`` (None: the loop's default executor). ``on_error`` is called on the loop
        thread, so it must not block, for a skipped frame or a failed source; a normal end is
        not an error. A source feeds one track at a time: opening a new one ends the previous
        one, and the new one carries on from where the source is.
        """
        for name, value in (("width", width), ("height", height)):
            if _check_positive_int(name, value) % 2:
                raise InvalidInputError(f"{name} must be even (yuv420p), got {value}")
        _check_positive_int("fps", fps)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise LoopThreadError(
                "VideoSource.open_track() must be called on the event loop that runs the track"
            ) from None
        track = SourceTrack(
            self,
            width=width,
            height=height,
            fps=fps,
            executor=executor,
            on_error=on_error,
            name=self._name,
        )
        with self._state_lock:
            if self._closed:
                raise InvalidInputError(f"{self._name} is closed; make a new source")
            previous, self._track, self._loop = self._track, track, loop
            self._executor = executor
        if previous is not None:
            previous.stop()
        self._track_opened()
        return track

    def close(self) -> None:
        """Release the device or file and end the current track. Safe from any thread, and
        safe to call again."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            self._ended = True
            track, loop, self._track = self._track, self._loop, None
        if track is not None:
            _call_on_loop(loop, track.stop)
        on_loop = _on_loop_thread()
        if on_loop:
            # Releasing may wait for a read or run user code (a generator's cleanup, a
            # capture's release()): never on the loop thread.
            try:
                asyncio.get_running_loop().run_in_executor(self._executor, self._release_when_idle)
                return
            except RuntimeError:
                pass  # the executor has shut down: release here only if no read holds the lock
        if self._read_lock.acquire(timeout=0 if on_loop else _CLOSE_WAIT):
            try:
                self._release_once()
            finally:
                self._read_lock.release()
        # Otherwise a read is still running, and the reader releases when it finishes.

    def _release_when_idle(self) -> None:
        with self._read_lock:
            self._release_once()

    # --- the FrameFeed side, used by SourceTrack on the loop thread ---

    @abc.abstractmethod
    async def _next_frame(
        self, width: int, height: int, fps: int, executor: concurrent.futures.Executor | None
    ) -> av.VideoFrame | None: ...

    def _track_opened(self) -> None:  # noqa: B027 - an optional hook
        """A track was opened (on the loop thread); a source may start loop-side work here."""

    async def _wait_for_news(self, timeout: float | None) -> bool:
        return True  # only sources that send on arrival are ever asked

    def _frame_sent(self) -> None:
        self._frames_sent += 1

    def _track_ended(self, track: SourceTrack) -> None:
        with self._state_lock:
            if self._track is track:
                self._track = None

    # --- releasing resources ---

    def _release(self) -> None:  # noqa: B027 - an optional hook; most sources hold nothing
        """Free the device, file or reader. Called once, with the read lock held."""

    def _release_once(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            self._release()
        except Exception:
            logger.exception("releasing %s failed", self._name)


class _PullSource(VideoSource):
    """A source read with a blocking call per frame, in the executor."""

    def __init__(self, name: str, pixel_format: PixelFormat = "bgr24") -> None:
        _check_pixel_format(pixel_format)
        super().__init__(name)
        self._pixel_format: str = pixel_format

    @abc.abstractmethod
    def _read(self, fps: int) -> object:
        """The next frame (numpy array or av.VideoFrame). Blocking; runs in the executor with
        the read lock held. Raises EndOfStream at a normal end."""

    async def _next_frame(
        self, width: int, height: int, fps: int, executor: concurrent.futures.Executor | None
    ) -> av.VideoFrame | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._read_converted, width, height, fps)

    def _read_converted(self, width: int, height: int, fps: int) -> av.VideoFrame:
        with self._read_lock:
            try:
                if self._closed:
                    raise EndOfStream
                raw = self._read(fps)
            except (EndOfStream, SourceFailed):
                self._ended = True
                raise
            except Exception as error:
                self._ended = True
                raise SourceFailed(
                    InvalidInputError(
                        f"{self._name} failed while reading a frame: "
                        f"{type(error).__name__}: {error}"
                    )
                ) from error
            finally:
                # close() may have given up waiting for this read; then the release is ours.
                if self._closed:
                    self._release_once()
        return to_track_frame(raw, width, height, self._pixel_format)


class IterableSource(_PullSource):
    """Frames from an iterable or generator of HxWx3 uint8 numpy arrays (or av.VideoFrames).

    The track ends when the iterable runs out. ``close()`` closes a generator, so its
    ``finally`` blocks run.
    """

    def __init__(self, frames: Iterable[Any], *, pixel_format: PixelFormat = "bgr24") -> None:
        super().__init__(f"iterable {type(frames).__name__}", pixel_format)
        self._frames: Iterator[Any] = iter(frames)

    def _read(self, fps: int) -> object:
        try:
            return next(self._frames)
        except StopIteration:
            raise EndOfStream from None

    def _release(self) -> None:
        close = getattr(self._frames, "close", None)
        if callable(close):
            close()


class CaptureSource(_PullSource):
    """Frames from an object with ``read() -> (ok, frame)``, such as ``cv2.VideoCapture``.

    The track ends when ``read()`` returns ``ok`` false. With ``release=True`` (the default)
    ``close()`` calls the capture's ``release()``.
    """

    def __init__(
        self, capture: Any, *, pixel_format: PixelFormat = "bgr24", release: bool = True
    ) -> None:
        if not callable(getattr(capture, "read", None)):
            raise InvalidInputError(
                f"expected an object with read() -> (ok, frame), got {type(capture).__name__}"
            )
        super().__init__(f"capture {type(capture).__name__}", pixel_format)
        self._capture = capture
        self._owns_capture = release

    def _read(self, fps: int) -> object:
        result = self._capture.read()
        if not isinstance(result, tuple) or len(result) != 2:
            raise SourceFailed(
                InvalidInputError(
                    f"{self._name}.read() must return (ok, frame), got {type(result).__name__}"
                )
            )
        ok, frame = result
        if not ok:
            raise EndOfStream
        return frame

    def _release(self) -> None:
        release = getattr(self._capture, "release", None)
        if self._owns_capture and callable(release):
            release()


class _TestPatternSource(_PullSource):
    """The synthetic pattern, running in real time at its own frame rate."""

    # Drawn when its frame is due, like a camera's newest frame: a picture drawn ahead would
    # wait for the rate and reach the model older than a live input's.
    _reads_when_due = True

    def __init__(self, width: int, height: int, fps: int, seed: int) -> None:
        super().__init__(f"test pattern {width}x{height}@{fps}")
        render_test_pattern(0, width, height, seed)  # validates the arguments, warms the cache
        self._size = (width, height)
        self._fps = fps
        self._seed = seed
        # Seconds of pattern time shown so far; exact, so equal rates map frame k to frame k.
        self._position = Fraction(0)

    def _read(self, fps: int) -> object:
        n = int(self._position * self._fps)
        self._position += Fraction(1, fps)
        return render_test_pattern(n, self._size[0], self._size[1], self._seed)


def _open_input(
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


class _FileSource(_PullSource):
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
        self._container, self._stream = _open_input(str(self._path), what=self._name)
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
        close = getattr(self._frames, "close", None)
        if callable(close):
            close()
        self._container.close()


class _CameraSource(_PullSource):
    """A live device opened through PyAV; each frame sent is the newest the device has."""

    _reads_when_due = True

    def __init__(self, url: str, *, format: str | None, options: dict[str, str]) -> None:
        super().__init__(f"camera {url!r}")
        # Non-blocking reads let a read drain what the device queued and keep only the newest,
        # so a device faster than the model never builds up latency. v4l2 needs the flag when
        # the device is opened; an input that refuses it is opened again without it.
        try:
            self._container, self._stream = _open_input(
                url, what=self._name, format=format, options={"fflags": "nonblock", **options}
            )
        except InvalidInputError:
            self._container, self._stream = _open_input(
                url, what=self._name, format=format, options=options
            )
        # avfoundation and dshow look at the flag on each read, so it still helps after opening.
        self._container.flags |= cast(int, av.container.Flags.non_block.value)
        self._packets: Iterator[av.Packet[Any]] = self._container.demux(self._stream)

    def _read(self, fps: int) -> object:
        newest: av.VideoFrame | None = None
        drained = 0
        deadline = time.monotonic() + _CAMERA_STALL
        while True:
            if self._closed:
                raise EndOfStream
            if time.monotonic() > deadline:
                raise SourceFailed(
                    InvalidInputError(f"{self._name} delivered no frame for {_CAMERA_STALL} s")
                )
            started = time.monotonic()
            try:
                packet = next(self._packets)
            except BlockingIOError:
                # A failed read ends PyAV's demux generator; the next read needs a new one.
                self._packets = self._container.demux(self._stream)
                if newest is not None:
                    return newest
                time.sleep(_CAMERA_POLL)
                continue
            except StopIteration:
                raise SourceFailed(
                    InvalidInputError(f"{self._name} stopped (was it unplugged?)")
                ) from None
            waited = time.monotonic() - started > _CAMERA_FRESH
            drained += 1
            for frame in packet.decode():
                newest = frame
            if newest is not None and (waited or drained >= _CAMERA_DRAIN_LIMIT):
                return newest

    def _release(self) -> None:
        close = getattr(self._packets, "close", None)
        if callable(close):
            close()
        self._container.close()


class _LatestSource(VideoSource):
    """A source filled by someone else. The track sends each new frame as it arrives (at most
    at the model's rate), and repeats the last one when nothing new comes."""

    _sends_on_arrival = True

    def __init__(self, name: str, pixel_format: PixelFormat = "bgr24") -> None:
        _check_pixel_format(pixel_format)
        super().__init__(name)
        self._pixel_format: str = pixel_format
        # The last frame sent and what it became, so a repeat costs no conversion:
        # (input frame, width, height, track frame). Touched only on the loop thread.
        self._converted: tuple[object, int, int, av.VideoFrame] | None = None
        # Set (on the loop) when there is news for the track; one per track, made on its loop.
        self._news: asyncio.Event | None = None

    @abc.abstractmethod
    def _newest(self) -> object | None:
        """The newest input frame, or None if none has come yet. Non-blocking, on the loop.
        Raises EndOfStream or SourceFailed."""

    @abc.abstractmethod
    def _has_news(self) -> bool:
        """Whether ``_newest()`` would now say something new: a frame not sent yet, an end, a
        failure. Non-blocking, on the loop."""

    def _track_opened(self) -> None:
        self._news = asyncio.Event()

    def _track_ended(self, track: SourceTrack) -> None:
        super()._track_ended(track)
        if self._news is not None:
            self._news.set()  # a track waiting for news must see that it has stopped

    def _announce(self) -> None:
        """Wake the track: there is news. Safe from any thread."""
        with self._state_lock:
            loop, news = self._loop, self._news
        if news is not None:  # else no track yet: the first one looks for itself
            _call_on_loop(loop, news.set)

    async def _wait_for_news(self, timeout: float | None) -> bool:
        news = self._news
        if news is None or self._has_news():
            return True
        news.clear()
        if self._has_news():  # it came between the look and the clear
            return True
        try:
            await asyncio.wait_for(news.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return self._has_news()

    async def _next_frame(
        self, width: int, height: int, fps: int, executor: concurrent.futures.Executor | None
    ) -> av.VideoFrame | None:
        raw = self._newest()
        if raw is None:
            return None
        cached = self._converted
        if cached is None or cached[0] is not raw or cached[1:3] != (width, height):
            if isinstance(raw, av.VideoFrame) and not needs_conversion(raw, width, height):
                converted = raw
            else:
                loop = asyncio.get_running_loop()
                converted = await loop.run_in_executor(
                    executor, to_track_frame, raw, width, height, self._pixel_format
                )
            self._converted = cached = (raw, width, height, converted)
        # The same picture may go out many times, each time with its own pts.
        return fresh_frame(cached[3])


class PushSource(_LatestSource):
    """Frames pushed by your code, from any thread: ``source.send(frame)``.

    ``send()`` checks the frame at once (``InvalidInputError`` for anything but an HxWx3 uint8
    array in ``pixel_format`` order, or an av.VideoFrame), copies it, and returns without waiting.
    The track sends a new frame as soon as it arrives, but no more often than the model's frame
    rate: a frame replaced before it was sent counts in :attr:`frames_dropped`. When nothing new
    comes for two frame intervals the last frame is sent again, so the stream never stalls.
    """

    def __init__(self, *, pixel_format: PixelFormat = "bgr24") -> None:
        super().__init__("push source", pixel_format)
        self._slot_lock = threading.Lock()
        self._latest: object | None = None
        self._unsent = False
        self._received = 0
        self._dropped = 0

    @property
    def frames_received(self) -> int:
        """Frames accepted by :meth:`send`."""
        return self._received

    @property
    def frames_dropped(self) -> int:
        """Frames replaced by a newer one before they could be sent."""
        return self._dropped

    def send(self, frame: np.ndarray[Any, Any] | av.VideoFrame) -> None:
        """Offer ``frame`` as the newest input frame. Thread-safe; does not wait for the track."""
        problem = frame_problem(frame, self._pixel_format)
        if problem is not None:
            raise InvalidInputError(problem[1])
        if isinstance(frame, np.ndarray):
            # Callers often reuse one buffer; what we send must be what they passed.
            frame = np.array(frame, order="C", copy=True)
        with self._slot_lock:
            if self._closed:
                raise SessionClosedError("this PushSource is closed; frames can no longer be sent")
            if self._unsent:
                self._dropped += 1
            self._latest = frame
            self._unsent = True
            self._received += 1
        self._announce()

    def _newest(self) -> object | None:
        with self._slot_lock:
            if self._closed:
                raise EndOfStream
            self._unsent = False
            return self._latest

    def _has_news(self) -> bool:
        return self._unsent or self._closed


class TrackSource(_LatestSource):
    """Frames from an aiortc video track (a ``MediaPlayer`` track, another peer's track, ...).

    Once a track is opened, the source reads the given track continuously on the loop thread
    (someone must, or aiortc queues frames without bound) and sends each new frame as it
    arrives, at most at the model's rate, resized only when its size differs. The track ends
    when the given track ends. ``close()`` stops the given track.
    """

    def __init__(self, track: MediaStreamTrack) -> None:
        if not isinstance(track, MediaStreamTrack) or track.kind != "video":
            kind = getattr(track, "kind", None)
            raise InvalidInputError(
                f"expected an aiortc MediaStreamTrack of kind 'video', got "
                f"{type(track).__name__} of kind {kind!r}"
            )
        super().__init__(f"track {type(track).__name__}")
        self._input = track
        self._pump: asyncio.Task[None] | None = None
        self._latest: object | None = None
        self._latest_taken = False
        self._input_ended = False
        self._failure: SourceFailed | None = None

    def _track_opened(self) -> None:
        super()._track_opened()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(
                self._drain(), name="decart-sync track source"
            )

    def _newest(self) -> object | None:
        if self._failure is not None:
            raise self._failure
        # When the given track ends, its last frame still goes out once.
        if self._closed or (self._input_ended and (self._latest_taken or self._latest is None)):
            raise EndOfStream
        self._latest_taken = True
        return self._latest

    def _has_news(self) -> bool:
        unsent = self._latest is not None and not self._latest_taken
        return unsent or self._input_ended or self._closed

    async def _drain(self) -> None:
        try:
            while not self._closed:
                self._latest = await self._input.recv()
                self._latest_taken = False
                self._announce()
        except MediaStreamError:
            pass  # the given track ended
        except Exception as error:
            self._failure = SourceFailed(
                InvalidInputError(f"{self._name} failed: {type(error).__name__}: {error}")
            )
        finally:
            self._input_ended = True
            self._ended = True
            self._announce()

    def _release(self) -> None:
        def stop() -> None:
            if self._pump is not None:
                self._pump.cancel()
            self._input.stop()

        _call_on_loop(self._loop, stop)


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
    return _FileSource(resolved, loop=loop, realtime=realtime)


def test_pattern(
    *, width: int = 640, height: int = 352, fps: int = 30, seed: int = 0
) -> VideoSource:
    """A synthetic, deterministic input: moving coloured shapes and a large frame counter.

    Frame ``n`` is :func:`render_test_pattern` ``(n, width, height, seed)``. The pattern runs at
    ``fps`` in real time; at a different model rate its frames repeat or are skipped.
    """
    _check_positive_int("fps", fps)
    return _TestPatternSource(width, height, fps, seed)


# Keep pytest from collecting the factory as a test when a test module imports it.
test_pattern.__test__ = False  # type: ignore[attr-defined]


def _camera_input(
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
        _check_positive_int("fps", fps)
    if (width is None) != (height is None):
        raise InvalidInputError("give camera width and height together, or neither")
    size = None
    if width is not None and height is not None:
        size = (_check_positive_int("width", width), _check_positive_int("height", height))
    url, input_format, options = _camera_input(device, fps, size)
    return _CameraSource(url, format=input_format, options=options)


def as_source(obj: object) -> VideoSource:
    """Whatever ``connect()`` was given as input, as a :class:`VideoSource`.

    Accepts a VideoSource (returned as is), an aiortc video track, a str or path of a video file
    (which must exist), an object with ``read() -> (ok, frame)``, or an iterable of frames (a
    4-D numpy array counts as a sequence of frames). May open a file: call it off the loop thread.
    """
    if isinstance(obj, VideoSource):
        return obj
    if isinstance(obj, MediaStreamTrack):
        return TrackSource(obj)
    if isinstance(obj, (str, os.PathLike)):
        return video_file(obj)
    if isinstance(obj, np.ndarray):
        if obj.ndim == 4:
            return IterableSource(obj)
        raise InvalidInputError(
            f"got a single numpy array of shape {obj.shape}; to stream one frame, use "
            "PushSource().send(frame) or pass [frame]. Accepted: " + _ACCEPTED
        )
    # File objects have read() and are iterable, but yield bytes, not frames.
    if isinstance(obj, (bytes, bytearray, memoryview, io.IOBase, Mapping)):
        raise InvalidInputError(f"expected {_ACCEPTED}; got {type(obj).__name__}")
    if callable(getattr(obj, "read", None)):
        return CaptureSource(obj)
    if isinstance(obj, Iterable):
        return IterableSource(obj)
    raise InvalidInputError(f"expected {_ACCEPTED}; got {type(obj).__name__}")
