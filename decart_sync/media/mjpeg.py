"""An MJPEG stream of a session for web pages: one JPEG encode per frame, shared by every viewer.

Browsers show ``multipart/x-mixed-replace`` JPEG streams in a plain ``<img src=...>``, which makes
MJPEG the simplest way to put a live session on a page. Flask::

    broadcaster = MjpegBroadcaster(session)

    @app.route("/video")
    def video():
        return Response(broadcaster.viewer(), mimetype=broadcaster.content_type)

Django: ``StreamingHttpResponse(broadcaster.viewer(), content_type=broadcaster.content_type)``
under WSGI, and ``broadcaster.async_viewer()`` in place of ``viewer()`` under ASGI.

How it behaves:

* **One encode per frame.** A thread named ``decart-mjpeg`` reads the session's newest frame,
  encodes it once, and hands the same bytes to every viewer. Ten viewers cost what one does.
* **Idle without viewers.** That thread starts with the first viewer and ends when the last one
  leaves; with nobody watching, nothing is read or encoded.
* **Slow viewers skip, never queue.** A viewer always gets the newest JPEG when it asks for the
  next one; frames it was too slow for are not kept for it.
* **Stale viewers are dropped.** A viewer that has not asked for a frame for ``stale_after``
  seconds (an HTTP response the server abandoned without closing it) is detached, so it cannot
  keep the encoder running. If it ever asks again, its stream simply ends.
* :meth:`close`, or the end of the session, ends every viewer's stream.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from decart_sync._loop import hand_to_loop
from decart_sync._redact import get_logger
from decart_sync._timeouts import wait_timeout
from decart_sync.errors import DecartTimeoutError, InvalidInputError, SessionClosedError
from decart_sync.media.recorder import FrameSource
from decart_sync.media.snapshot import DEFAULT_QUALITY, JpegEncoder, encode_jpeg
from decart_sync.realtime import FrameConsumer

__all__ = ["MjpegBroadcaster"]

_log = get_logger(__name__)

THREAD_NAME = "decart-mjpeg"
BOUNDARY = "frame"
DEFAULT_STALE_AFTER = 10.0
# How often the encoder thread wakes with no new frame, to drop stale viewers and notice it
# has none left.
_TICK = 0.25


class _Viewer:
    """One attached viewer: when it last asked for a frame, and how to wake it."""

    __slots__ = ("attached", "last_pull", "number", "waiting", "wake")

    def __init__(self, number: int, wake: Callable[[], None] | None) -> None:
        self.number = number
        self.wake = wake  # async viewers: schedules a wake-up on their event loop
        self.attached = True
        self.waiting = False  # inside a wait for the next frame, so certainly not stale
        self.last_pull = time.monotonic()


def _part(jpeg: bytes) -> bytes:
    """One part of the multipart stream: boundary, headers, the JPEG, and a line break."""
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    ).encode("ascii")
    return head + jpeg + b"\r\n"


class MjpegBroadcaster:
    """Serves ``session``'s transformed stream as MJPEG to any number of HTTP viewers.

    ``quality`` is the JPEG quality (1-100); ``max_fps`` caps how many frames a second are
    encoded (None: every frame the session delivers); ``stale_after`` is how long a viewer may
    go without asking for a frame before it is dropped. Safe to use from any thread.
    """

    def __init__(
        self,
        session: FrameSource,
        *,
        quality: int = DEFAULT_QUALITY,
        max_fps: float | None = None,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        if not callable(getattr(session, "frames", None)):
            raise InvalidInputError(
                f"MjpegBroadcaster needs a session (anything with frames()), got "
                f"{type(session).__name__}"
            )
        if max_fps is not None and (isinstance(max_fps, bool) or not max_fps > 0):
            raise InvalidInputError(f"max_fps must be a positive number or None, got {max_fps!r}")
        if isinstance(stale_after, bool) or not stale_after > 0:
            raise InvalidInputError(f"stale_after must be positive seconds, got {stale_after!r}")
        JpegEncoder(quality)  # validates the quality here rather than on the encoder thread
        self._session = session
        self._quality = quality
        self._interval = 0.0 if max_fps is None else 1.0 / max_fps
        self._stale_after = float(stale_after)
        self._changed = threading.Condition()
        # Everything below is guarded by self._changed.
        self._viewers: dict[int, _Viewer] = {}
        self._numbers = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._consumer: FrameConsumer | None = None
        self._jpeg: bytes | None = None
        self._part: bytes | None = None
        self._version = 0  # bumped for every new JPEG; viewers remember the last one they got
        self._frames_encoded = 0
        self._ended = False  # closed, or the session's stream ended: no more frames, ever
        self._error: BaseException | None = None
        # For latest_jpeg() without viewers: the last frame encoded on demand, and its JPEG.
        self._snapshot: tuple[Any, bytes] | None = None

    def __repr__(self) -> str:
        state = "ended" if self._ended else "encoding" if self._thread else "idle"
        return f"<MjpegBroadcaster {state} viewers={self.viewers} encoded={self._frames_encoded}>"

    # ------------------------------------------------------------------ state

    @property
    def content_type(self) -> str:
        """The HTTP Content-Type of a viewer's stream."""
        return f"multipart/x-mixed-replace; boundary={BOUNDARY}"

    @property
    def viewers(self) -> int:
        """How many viewers are attached now."""
        return len(self._viewers)

    @property
    def frames_encoded(self) -> int:
        """JPEG encodes done so far (each shared by every viewer that received it)."""
        return self._frames_encoded

    @property
    def encoding(self) -> bool:
        """Whether the encoder thread is running (it runs only while someone watches)."""
        return self._thread is not None

    @property
    def closed(self) -> bool:
        """Whether the broadcaster was closed or its session's stream ended."""
        return self._ended

    @property
    def error(self) -> BaseException | None:
        """What ended the stream, if it ended because of an error (the session failed)."""
        return self._error

    # ------------------------------------------------------------------ viewers

    def viewer(self) -> Iterator[bytes]:
        """A viewer's stream: each item is one complete multipart part (boundary, headers,
        JPEG), ready to be written to an HTTP response with :attr:`content_type`.

        The viewer attaches when iteration starts and detaches when the iterator is closed
        (web servers close a response's iterator when the client goes away), when it goes
        stale, or when the broadcaster closes.
        """
        viewer = self._attach(None)
        try:
            seen = 0
            while True:
                with self._changed:
                    viewer.waiting = True
                    while self._version <= seen and not self._finished(viewer):
                        self._changed.wait()
                    viewer.waiting = False
                    if self._finished(viewer):
                        return
                    seen, part = self._version, self._part
                assert part is not None
                yield part
                viewer.last_pull = time.monotonic()  # it asked for the next one
        finally:
            self._detach(viewer)

    async def async_viewer(self) -> AsyncIterator[bytes]:
        """:meth:`viewer` for asyncio servers (Django under ASGI, Starlette): the same parts,
        without holding a thread per viewer while waiting for the next frame."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            # Called from other threads, with the broadcaster's lock held. A viewer whose loop
            # has closed is gone, so there is nobody to wake.
            hand_to_loop(loop, ready.set)

        viewer = self._attach(wake)
        try:
            seen = 0
            while True:
                with self._changed:
                    if self._finished(viewer):
                        return
                    part = None
                    if self._version > seen:
                        seen, part = self._version, self._part
                    else:
                        # Cleared under the lock: a frame published after this point sets it
                        # again, so the wait below cannot miss it.
                        ready.clear()
                        viewer.waiting = True
                if part is not None:
                    yield part
                    viewer.last_pull = time.monotonic()
                    continue
                try:
                    await ready.wait()
                finally:
                    viewer.waiting = False
                    viewer.last_pull = time.monotonic()
        finally:
            self._detach(viewer)

    def _attach(self, wake: Callable[[], None] | None) -> _Viewer:
        with self._changed:
            viewer = _Viewer(next(self._numbers), wake)
            if self._ended:
                viewer.attached = False  # its stream ends at once
                return viewer
            self._viewers[viewer.number] = viewer
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._encode_loop, name=THREAD_NAME, daemon=True
                )
                self._thread.start()
            _log.debug("MJPEG viewer %d attached (%d watching)", viewer.number, len(self._viewers))
            return viewer

    def _detach(self, viewer: _Viewer) -> None:
        with self._changed:
            if self._viewers.pop(viewer.number, None) is not None:
                _log.debug("MJPEG viewer %d left (%d watching)", viewer.number, len(self._viewers))
            viewer.attached = False
            # The encoder thread notices an empty room on its next wake-up; wake it now.
            self._changed.notify_all()

    def _finished(self, viewer: _Viewer) -> bool:
        return self._ended or not viewer.attached

    # ------------------------------------------------------------------ the encoder thread

    def _drop_stale(self, now: float) -> None:
        # Caller holds the lock.
        for viewer in list(self._viewers.values()):
            if not viewer.waiting and now - viewer.last_pull > self._stale_after:
                _log.info(
                    "MJPEG viewer %d dropped: no frame requested for %.0f s",
                    viewer.number,
                    now - viewer.last_pull,
                )
                del self._viewers[viewer.number]
                viewer.attached = False
                if viewer.wake is not None:
                    viewer.wake()

    def _encode_loop(self) -> None:
        """Run by the ``decart-mjpeg`` thread while at least one viewer is attached."""
        encoder = JpegEncoder(self._quality)
        consumer: FrameConsumer | None = None
        next_due = 0.0
        try:
            # BGR, not the decoded frame: the session converts each frame once for all its BGR
            # readers, and the frames we then wrap for the encoder are ours alone.
            consumer = self._session.frames("bgr", policy="latest")
            with self._changed:
                self._consumer = consumer
            while True:
                with self._changed:
                    self._drop_stale(time.monotonic())
                    if self._ended or not self._viewers:
                        # Decided under the lock, so a viewer attaching from now on sees no
                        # encoder thread and starts a new one.
                        self._thread = self._consumer = None
                        return
                    wait = next_due - time.monotonic()
                    if wait > 0:  # max_fps: rest until the next encode is due
                        self._changed.wait(min(wait, _TICK))
                        continue
                try:
                    frame = consumer.get(_TICK)
                except DecartTimeoutError:
                    continue
                jpeg = encoder.encode(frame)
                with self._changed:
                    self._publish(jpeg)
                next_due = time.monotonic() + self._interval
        except SessionClosedError:
            self._end(None)  # the session's stream ended (or close() closed our consumer)
        except Exception as error:
            _log.warning("MJPEG stream stopped: %s", error)
            self._end(error)
        finally:
            if consumer is not None:
                consumer.close()
            with self._changed:
                if self._consumer is consumer:
                    self._consumer = None
                if self._thread is threading.current_thread():
                    self._thread = None

    def _publish(self, jpeg: bytes) -> None:
        # Caller holds the lock.
        self._jpeg, self._part = jpeg, _part(jpeg)
        self._version += 1
        self._frames_encoded += 1
        self._changed.notify_all()
        for viewer in self._viewers.values():
            if viewer.wake is not None:
                viewer.wake()

    def _end(self, error: BaseException | None) -> None:
        with self._changed:
            if self._ended:
                return
            self._ended = True
            self._error = error
            viewers = list(self._viewers.values())
            self._viewers.clear()
            for viewer in viewers:
                viewer.attached = False
                if viewer.wake is not None:
                    viewer.wake()
            self._changed.notify_all()

    # ------------------------------------------------------------------ snapshots

    def latest_jpeg(self, timeout: float | None = None) -> bytes | None:
        """The newest frame as JPEG bytes, for a snapshot endpoint; None if no frame arrives
        within ``timeout`` seconds (None: wait as long as it takes), or once closed.

        While viewers watch, this is the JPEG they were last sent (no extra encode). Without
        viewers the newest frame is encoded here, in the calling thread, once per frame however
        often it is asked for.
        """
        with self._changed:
            if self._ended:
                return None
            if self._thread is not None and self._jpeg is not None:
                return self._jpeg
        frame = self._newest_frame(wait_timeout(timeout))
        if frame is None:
            return None
        with self._changed:
            if self._snapshot is not None and self._snapshot[0] is frame:
                return self._snapshot[1]
        jpeg = encode_jpeg(frame, self._quality)
        with self._changed:
            self._snapshot = (frame, jpeg)
            self._frames_encoded += 1
        return jpeg

    def _newest_frame(self, timeout: float | None) -> Any | None:
        latest = getattr(self._session, "latest", None)
        if callable(latest):
            frame = latest("bgr")
            if frame is not None:
                return frame
        if timeout is not None and timeout <= 0:
            return None
        # Nothing yet: wait for the first frame with a short-lived reader of our own.
        with self._session.frames("bgr", policy="latest") as consumer:
            try:
                return consumer.get(timeout)
            except (DecartTimeoutError, SessionClosedError):
                return None

    # ------------------------------------------------------------------ lifecycle

    def close(self, timeout: float = 5.0) -> None:
        """End every viewer's stream and stop the encoder thread. Idempotent."""
        self._end(None)
        with self._changed:
            thread, consumer = self._thread, self._consumer
        if consumer is not None:
            consumer.close()  # wakes the encoder if it is waiting for a frame
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> MjpegBroadcaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
