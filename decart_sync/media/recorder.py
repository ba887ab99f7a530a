"""Recording the transformed stream to an MP4 file (H.264 through PyAV), with real timestamps.

Three ways in, from the most to the least hands-on::

    with Recorder("out.mp4") as recorder:               # you feed it, from your thread
        for info in session.frame_infos(policy="fifo"):
            recorder.write(info.frame, at=info.received_at)

    result = record(session, "out.mp4", seconds=10)     # blocks; returns a RecordingResult

    with SessionRecorder(session, "out.mp4") as rec:    # a thread of its own records while
        ...                                             # you do something else
    print(rec.result)

Each frame is stamped with when it arrived, relative to the first one, on a 90 kHz clock, not
with a nominal frame rate: if the stream stalls for half a second, so does the video, and the
file lasts as long as the session did. Encoding is H.264 (libx264, ``yuv420p``, preset
``veryfast``) in an MP4 that any player opens.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time
from fractions import Fraction
from types import TracebackType
from typing import Any, Protocol

import attrs
import av
import av.container
from av.video.reformatter import VideoReformatter

from decart_sync._redact import get_logger
from decart_sync._timeouts import wait_timeout
from decart_sync.errors import DecartTimeoutError, InvalidInputError, SessionClosedError
from decart_sync.media.snapshot import as_video_frame
from decart_sync.realtime import FrameConsumer

__all__ = ["FrameSource", "Recorder", "RecordingResult", "SessionRecorder", "record"]

_log = get_logger(__name__)

TIME_BASE = Fraction(1, 90_000)
THREAD_NAME = "decart-recorder"
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = 23
# Frames a session recorder may hold while the encoder catches up; beyond it the oldest go.
DEFAULT_BACKLOG = 90
# How often a waiting recorder looks at its stop flag.
_POLL = 0.1
# Containers chosen by the file's extension; any other name gets an MP4.
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class FrameSource(Protocol):
    """What the sinks need from a session: ``frames(format, policy=..., maxsize=...)``. A
    session has it; so can a test double or a relay of your own."""

    def frames(self, format: Any = ..., *, policy: Any = ..., maxsize: int = ...) -> Any: ...


@attrs.frozen
class RecordingResult:
    """What a finished recording holds."""

    path: pathlib.Path
    frames: int
    """Frames written to the file."""
    duration: float
    """Seconds from the first frame to the last one."""
    width: int
    height: int
    frames_dropped: int = 0
    """Frames the session delivered that the recorder could not keep up with."""
    error: BaseException | None = attrs.field(default=None, eq=False)
    """Why the recording ended early (the stream failed, or writing did), or None."""

    @property
    def size_bytes(self) -> int:
        """The file's size on disk (0 if nothing was written)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


class Recorder:
    """Writes frames to an H.264 MP4 file as they come. Use from one thread at a time.

    The file is created at once (so a bad path fails here, not at the first frame); its video
    size is that of the first frame, and later frames of another size are scaled to it.
    ``fps`` is only a hint for the encoder's rate control; timestamps come from :meth:`write`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: int = 30,
        preset: str = DEFAULT_PRESET,
        crf: int = DEFAULT_CRF,
    ) -> None:
        self.path = pathlib.Path(os.fspath(path))
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            raise InvalidInputError(f"fps must be a positive int, got {fps!r}")
        self._fps = fps
        self._options = {"preset": preset, "crf": str(crf)}
        container_format = _CONTAINERS.get(self.path.suffix.lower(), "mp4")
        # The MP4 index goes at the front, so players and browsers can start playing the file
        # before they have all of it.
        options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
        try:
            # FFmpeg opens the file only when the first frame is muxed; creating it now makes a
            # bad path fail here, in the caller's hands, rather than in the middle of a session.
            self.path.open("wb").close()
            self._container: av.container.OutputContainer = av.open(
                str(self.path), mode="w", format=container_format, options=options
            )
        except (OSError, av.FFmpegError) as error:
            raise InvalidInputError(f"cannot write {str(self.path)!r}: {error}") from None
        self._stream: av.VideoStream | None = None
        self._reformatter = VideoReformatter()
        self._first_at: float | None = None
        self._last_at = 0.0
        self._last_pts = -1
        self._frames = 0
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Recorder {str(self.path)!r} {state} frames={self._frames}>"

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def duration(self) -> float:
        """Seconds between the first frame written and the last one."""
        return 0.0 if self._first_at is None else self._last_at - self._first_at

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the video, once the first frame has set it."""
        stream = self._stream
        return None if stream is None else (stream.width, stream.height)

    @property
    def closed(self) -> bool:
        return self._closed

    def _open_stream(self, width: int, height: int) -> av.VideoStream:
        stream = self._container.add_stream("libx264", rate=self._fps, options=self._options)
        # yuv420p needs even sides; an odd one loses its last row or column.
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        self._stream = stream
        return stream

    def write(self, frame: Any, at: float | None = None) -> None:
        """Encode one frame (numpy HxWx3 uint8 BGR, or av.VideoFrame) shown at time ``at``.

        ``at`` is in seconds on any clock that only goes forward (a FrameInfo's
        ``received_at``, ``time.monotonic()``); None means now. Only differences matter: the
        first frame is at 0. A frame that is not later than the one before is nudged just after
        it. The frame you pass is never modified.
        """
        if self._closed:
            raise SessionClosedError(f"the recorder for {str(self.path)!r} is closed")
        now = time.monotonic() if at is None else float(at)
        source = as_video_frame(frame)
        stream = self._stream or self._open_stream(source.width, source.height)
        width, height = stream.width, stream.height
        if source.format.name == "yuv420p" and (source.width, source.height) == (width, height):
            # Already what the encoder wants: copy the planes (a memcpy) rather than stamp our
            # pts on a frame that other readers of the session share.
            owned = av.VideoFrame.from_ndarray(source.to_ndarray(), format="yuv420p")
        else:
            owned = self._reformatter.reformat(source, width, height, "yuv420p", threads=1)
            if owned is source:  # not expected for these formats, but never restamp theirs
                owned = av.VideoFrame.from_ndarray(source.to_ndarray(), format="yuv420p")
        if self._first_at is None:
            self._first_at = self._last_at = now
        pts = max(round((now - self._first_at) / TIME_BASE), self._last_pts + 1)
        owned.pts, owned.time_base = pts, TIME_BASE
        self._last_pts, self._last_at = pts, max(now, self._last_at)
        for packet in stream.encode(owned):
            self._container.mux(packet)
        self._frames += 1

    def close(self) -> RecordingResult:
        """Flush the encoder and finish the file. Idempotent. A recording without a single
        frame leaves no file behind (an MP4 needs at least one)."""
        if not self._closed:
            self._closed = True
            stream = self._stream
            try:
                if stream is not None:
                    for packet in stream.encode(None):
                        self._container.mux(packet)
            finally:
                try:
                    self._container.close()
                except av.FFmpegError:
                    if stream is not None:
                        raise
                if stream is None:
                    self.path.unlink(missing_ok=True)
        width, height = self.size or (0, 0)
        return RecordingResult(
            path=self.path,
            frames=self._frames,
            duration=self.duration,
            width=width,
            height=height,
        )

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Pump:
    """Moves frames from a FIFO consumer of the session into a Recorder until told to stop,
    the time is up, or the stream ends. Shared by :func:`record` (in the caller's thread) and
    :class:`SessionRecorder` (in its own)."""

    def __init__(
        self,
        session: FrameSource,
        path: str | os.PathLike[str],
        *,
        seconds: float | None,
        stop: threading.Event,
        backlog: int,
        recorder_options: dict[str, Any],
    ) -> None:
        if seconds is not None and (isinstance(seconds, bool) or not seconds > 0):
            raise InvalidInputError(f"seconds must be a positive number or None, got {seconds!r}")
        self.recorder = Recorder(path, **recorder_options)
        # FIFO: a recording wants every frame it can keep up with, in order. The "av" format
        # skips a colour conversion the encoder would only have to undo.
        self.consumer: FrameConsumer = session.frames("av", policy="fifo", maxsize=backlog)
        self.seconds = seconds
        self.stop = stop
        self.error: BaseException | None = None

    def run(self) -> RecordingResult:
        recorder, consumer = self.recorder, self.consumer
        deadline: float | None = None
        try:
            while not self.stop.is_set():
                try:
                    info = consumer.get_info(_POLL)
                except DecartTimeoutError:
                    continue
                except SessionClosedError:
                    break  # the stream ended cleanly
                if deadline is None and self.seconds is not None:
                    deadline = info.received_at + self.seconds
                if deadline is not None and info.received_at > deadline:
                    break
                recorder.write(info.frame, at=info.received_at)
            else:
                # Asked to stop: what was already received still belongs in the file, and
                # nothing newer, or a stream faster than the encoder would never let it end.
                stopped_at = time.monotonic()
                while True:
                    try:
                        info = consumer.get_info(0)
                    except (DecartTimeoutError, SessionClosedError):
                        break
                    if info.received_at > stopped_at:
                        break
                    recorder.write(info.frame, at=info.received_at)
        except Exception as error:
            # The stream failed, or writing did: keep what was recorded, report why it ended.
            self.error = error
            _log.warning("recording to %s stopped: %s", recorder.path, error)
        finally:
            consumer.close()
            result = recorder.close()
        return attrs.evolve(result, frames_dropped=consumer.dropped, error=self.error)


def record(
    session: FrameSource,
    path: str | os.PathLike[str],
    *,
    seconds: float | None = None,
    stop: threading.Event | None = None,
    backlog: int = DEFAULT_BACKLOG,
    **recorder_options: Any,
) -> RecordingResult:
    """Record ``session``'s transformed stream to ``path`` in the calling thread, until
    ``seconds`` have passed since the first frame, ``stop`` is set, or the stream ends.

    Returns a :class:`RecordingResult`; if the stream failed, the file holds what came before
    and ``result.error`` says why. ``recorder_options`` go to :class:`Recorder`.
    """
    pump = _Pump(
        session,
        path,
        seconds=seconds,
        stop=stop or threading.Event(),
        backlog=backlog,
        recorder_options=recorder_options,
    )
    return pump.run()


class SessionRecorder:
    """Records a session on a thread of its own (named ``decart-recorder``), which this object
    owns: :meth:`stop` (or leaving the ``with`` block) ends it, writes what was already
    received and finishes the file. The thread also ends by itself after ``seconds`` or when
    the session ends.
    """

    def __init__(
        self,
        session: FrameSource,
        path: str | os.PathLike[str],
        *,
        seconds: float | None = None,
        backlog: int = DEFAULT_BACKLOG,
        **recorder_options: Any,
    ) -> None:
        self._stop = threading.Event()
        # Built here, not on the thread, so that a bad path fails in the caller's thread, and
        # so the recording sees every frame from now on, not from when the thread gets going.
        self._pump = _Pump(
            session,
            path,
            seconds=seconds,
            stop=self._stop,
            backlog=backlog,
            recorder_options=recorder_options,
        )
        self._result: RecordingResult | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "done" if self._result else "recording" if self.running else "new"
        return f"<SessionRecorder {str(self.path)!r} {state} frames={self.frames_written}>"

    @property
    def path(self) -> pathlib.Path:
        return self._pump.recorder.path

    @property
    def frames_written(self) -> int:
        return self._pump.recorder.frames_written

    @property
    def frames_dropped(self) -> int:
        return self._pump.consumer.dropped

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self) -> RecordingResult | None:
        """The outcome, once the recording has finished."""
        return self._result

    def start(self) -> SessionRecorder:
        """Start recording. Idempotent; does nothing once stopped."""
        with self._lock:
            if self._thread is None and self._result is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
        return self

    def _run(self) -> None:
        self._result = self._pump.run()

    def wait(self, timeout: float | None = None) -> RecordingResult | None:
        """Wait for the recording to end by itself (``seconds`` reached, or the stream ended);
        returns the result, or None if it is still running after ``timeout``."""
        timeout = wait_timeout(timeout)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._result

    def stop(self, timeout: float | None = 30.0) -> RecordingResult:
        """Stop, write the frames already received, finish the file and return the result.
        Idempotent."""
        timeout = wait_timeout(timeout)
        self._stop.set()
        with self._lock:
            thread = self._thread
            if thread is None and self._result is None:
                # Never started: finish the recording here (it holds what was received since
                # this object was made), and make a later start() a no-op.
                self._result = self._pump.run()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise DecartTimeoutError(
                    f"the recorder for {str(self.path)!r} did not finish within {timeout}s"
                )
        assert self._result is not None
        return self._result

    def __enter__(self) -> SessionRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
