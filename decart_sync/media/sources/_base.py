"""The blocking-world side of every video source: lifecycle, the lend of one track at a time,
and releasing the device or file exactly once, never under a read in progress."""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import threading
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamTrack

from decart_sync._loop import hand_to_loop
from decart_sync._redact import get_logger
from decart_sync.errors import DecartSDKError, InvalidInputError, LoopThreadError
from decart_sync.media.sources._feed import Pacing
from decart_sync.media.sources._track import SourceTrack

__all__ = ["VideoSource", "check_positive_int"]

_log = get_logger(__name__)

# close() waits this long for a read in progress before leaving the release to that reader.
CLOSE_WAIT = 0.5


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
    return value


class VideoSource(abc.ABC):
    """Frames for a session's input, read from the blocking world.

    Give one to ``connect()`` (or anything :func:`as_source` accepts). The session calls
    :meth:`open_track` on its loop thread for each peer connection; :meth:`close` releases the
    device or file and ends the track. Sources are context managers.
    """

    def __init__(self, name: str, pacing: Pacing) -> None:
        self._name = name
        self._pacing = pacing
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

    @property
    def pacing(self) -> Pacing:
        """How a track paces this source: read ahead, read when due, or sent on arrival."""
        return self._pacing

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
            if check_positive_int(name, value) % 2:
                raise InvalidInputError(f"{name} must be even (yuv420p), got {value}")
        check_positive_int("fps", fps)
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
            track, self._track = self._track, None
        if track is not None:
            self._on_track_loop(track.stop)
        running = _running_loop()
        on_loop = running is not None
        if running is not None:
            # Releasing may wait for a read or run user code (a generator's cleanup, a
            # capture's release()): never on a loop thread. This thread is the loop's, so it
            # hands the work to an executor itself; no thread is crossed by hand.
            try:
                running.run_in_executor(self._executor, self._release_when_idle)
                return
            except RuntimeError:
                pass  # the executor has shut down: release here only if no read holds the lock
        if self._read_lock.acquire(timeout=0 if on_loop else CLOSE_WAIT):
            try:
                self._release_once()
            finally:
                self._read_lock.release()
        # Otherwise a read is still running, and the reader releases when it finishes.

    def _on_track_loop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the current track's loop thread: now if we are on it, soon
        otherwise (through the loop bridge); not at all if there is no track loop or it has
        closed, when nothing is left there to stop or wake."""
        with self._state_lock:
            loop = self._loop
        if loop is None:
            return
        if _running_loop() is loop:
            callback()
        else:
            hand_to_loop(loop, callback)

    def _release_when_idle(self) -> None:
        with self._read_lock:
            self._release_once()

    # --- the FrameFeed side: called by the source's track, on its loop thread ---

    @abc.abstractmethod
    async def next_frame(
        self, width: int, height: int, fps: int, executor: concurrent.futures.Executor | None
    ) -> av.VideoFrame | None:
        """The next frame at ``width`` x ``height`` in yuv420p, or None if there is nothing to
        send yet; see :class:`FrameFeed`. Called by the track on its loop thread."""

    async def wait_for_news(self, timeout: float | None) -> bool:
        """See :class:`FrameFeed`; only a source paced ``ON_ARRIVAL`` waits for anything."""
        return True

    def frame_sent(self) -> None:
        """Count one frame the track handed to the peer connection."""
        self._frames_sent += 1

    def track_ended(self, track: MediaStreamTrack) -> None:
        """The track stopped; forget it if it is still this source's track."""
        with self._state_lock:
            if self._track is track:
                self._track = None

    # --- releasing resources ---

    def _track_opened(self) -> None:  # noqa: B027 - an optional hook
        """A track was opened (on the loop thread); a source may start loop-side work here."""

    def _release(self) -> None:  # noqa: B027 - an optional hook; most sources hold nothing
        """Free the device, file or reader. Called once, with the read lock held."""

    def _release_once(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            self._release()
        except Exception:
            _log.exception("releasing %s failed", self._name)
