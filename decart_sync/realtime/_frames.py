"""The transformed video, handed from the SDK's loop thread to any number of user threads.

The loop thread decodes every frame the server sends and calls :meth:`FrameHub.publish`. User
threads read through a :class:`FrameConsumer` each::

    with session.frames() as frames:        # a FrameConsumer: an iterator and a context manager
        for frame in frames:                 # numpy HxWx3 uint8 BGR, newest first (latest-wins)
            cv2.imshow("out", frame)

    ok, frame = consumer.read(timeout=1.0)   # OpenCV style: (False, None) on timeout or end
    frame = consumer.get(timeout=1.0)        # queue style: raises DecartTimeoutError on timeout
    info = consumer.get_info(fresh=True)     # FrameInfo(frame, seq, pts, received_at), and only
                                             # a frame published after the call (a "flush")

What it guarantees:

* **Bounded memory.** A latest-wins consumer (the default) keeps one frame at most; a FIFO one at
  most ``maxsize``, dropping the oldest; the hub itself keeps only the newest frame. A consumer
  that never reads never grows, and never slows the others: publishing only drops a reference
  into each consumer's buffer.
* **Fresh frames for slow readers.** A slow latest-wins reader always gets the newest frame; what
  it missed is counted in :attr:`FrameConsumer.dropped`.
* **No copy per consumer.** Each published frame is wrapped once. Pixels are converted lazily, at
  most once per format, in the first reader thread that asks for them (never on the loop thread);
  every consumer of that format then gets the same array. Those arrays are read-only, so one
  reader cannot change what another sees: call ``frame.copy()`` before drawing on one. With
  ``format="av"`` you get the decoded :class:`av.VideoFrame` itself, shared with every other
  consumer: do not modify it, and do not convert it from two threads at once (PyAV's
  ``reformat``/``to_ndarray`` touch the frame), so prefer ``"bgr"``/``"rgb"`` unless you need it.
* **Clear endings.** :meth:`FrameHub.close` ends every consumer: a clean close lets readers drain
  what they hold, then iteration stops (``StopIteration``) and ``get`` raises
  :class:`~decart_sync.errors.SessionClosedError`; a close with an error discards what was held
  and makes iteration and ``get`` raise that error. Reconnects do not close the hub, so iterators
  live across them. Waits are interruptible, so Ctrl-C stops a blocked ``get`` or ``for`` loop.

One consumer is for one reading thread at a time (as in python-websockets): a second thread that
reads while another is reading gets :class:`~decart_sync.errors.InvalidInputError` rather than
frames interleaved between the two. Give each thread its own consumer.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Literal

import attrs
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter

from decart_sync._timeouts import wait_timeout
from decart_sync.errors import DecartTimeoutError, InvalidInputError, SessionClosedError

__all__ = ["FrameConsumer", "FrameFormat", "FrameHub", "FrameInfo", "FramePolicy"]

FrameFormat = Literal["bgr", "rgb", "av"]
"""``"bgr"``: numpy HxWx3 uint8 in OpenCV's channel order (the default); ``"rgb"``: the same in
RGB order; ``"av"``: the decoded :class:`av.VideoFrame` itself."""

FramePolicy = Literal["latest", "fifo"]
"""``"latest"``: keep only the newest unread frame; ``"fifo"``: keep up to ``maxsize`` in order,
dropping the oldest when full."""

_FORMATS: tuple[FrameFormat, ...] = ("bgr", "rgb", "av")
_POLICIES: tuple[FramePolicy, ...] = ("latest", "fifo")
_PIXEL_FORMATS = {"bgr": "bgr24", "rgb": "rgb24"}


@attrs.frozen
class FrameInfo:
    """One frame of the transformed stream, with where and when it came from."""

    frame: Any = attrs.field(repr=False)
    """The pixels, in the consumer's format: a read-only numpy array, or an ``av.VideoFrame``."""
    seq: int
    """0-based position in the session's output stream; it counts every frame the session
    received, including those this consumer dropped, so gaps show what was skipped."""
    pts: float | None
    """Presentation time in seconds, from the stream; None when the stream did not say."""
    received_at: float
    """``time.monotonic()`` when the frame reached the SDK; ``time.monotonic() - received_at``
    is how old the frame is."""


# Converting through a reformatter that lives as long as the thread keeps its scaling context
# (set up once per size and format) instead of building a new one per frame, as
# ``VideoFrame.to_ndarray(format=...)`` does for every new frame: 0.2-0.5 ms saved per frame at
# 640x352 (benchmarks/frames_hub.py). One per thread: a reformatter is not safe to share.
_thread_state = threading.local()


def _reformatter(pixel_format: str) -> VideoReformatter:
    cache: dict[str, VideoReformatter] | None = getattr(_thread_state, "reformatters", None)
    if cache is None:
        cache = _thread_state.reformatters = {}
    reformatter = cache.get(pixel_format)
    if reformatter is None:
        reformatter = cache[pixel_format] = VideoReformatter()
    return reformatter


def _readonly_pixels(frame: VideoFrame, pixel_format: str) -> np.ndarray[Any, Any]:
    # threads=1: by default swscale would start a worker per core for each reading thread.
    converted = _reformatter(pixel_format).reformat(frame, format=pixel_format, threads=1)
    array = converted.to_ndarray()
    # Viewing the pixels through a read-only buffer, rather than only clearing the WRITEABLE
    # flag, means no reader can switch writing back on: the array is shared with other readers.
    return np.asarray(array.data.toreadonly())


class _SharedFrame:
    """A published frame, shared by every consumer that holds it; converts on demand."""

    __slots__ = ("_arrays", "_lock", "frame", "received_at", "seq")

    def __init__(self, frame: VideoFrame, seq: int, received_at: float) -> None:
        self.frame = frame
        self.seq = seq
        self.received_at = received_at
        # One lock per frame: readers of different frames convert in parallel (PyAV releases the
        # GIL while scaling), while two readers of the same frame never convert it twice, nor at
        # the same time (a reformat briefly rewrites the source frame's colour metadata).
        self._lock = threading.Lock()
        self._arrays: dict[str, np.ndarray[Any, Any]] = {}

    def pixels(self, format: FrameFormat) -> Any:
        if format == "av":
            return self.frame
        array = self._arrays.get(format)
        if array is None:
            with self._lock:
                array = self._arrays.get(format)
                if array is None:
                    array = _readonly_pixels(self.frame, _PIXEL_FORMATS[format])
                    self._arrays[format] = array
        return array

    def info(self, format: FrameFormat) -> FrameInfo:
        return FrameInfo(
            frame=self.pixels(format),
            seq=self.seq,
            pts=self.frame.time,
            received_at=self.received_at,
        )


class _Inbox:
    """One consumer's buffer and wake-up, guarded by its hub's lock.

    Kept apart from :class:`FrameConsumer` so the hub can hold inboxes without keeping consumers
    alive: a consumer the user forgot about is collected, and its inbox then unsubscribed.
    """

    __slots__ = ("buffer", "closed", "delivered", "dropped", "reading", "ready", "waiting")

    def __init__(self, lock: threading.Lock, maxlen: int) -> None:
        # A deque with maxlen drops its oldest item on append: exactly latest-wins (maxlen 1)
        # and drop-oldest FIFO, with no branch on the policy in the publish loop.
        self.buffer: deque[_SharedFrame] = deque(maxlen=maxlen)
        self.ready = threading.Condition(lock)
        self.waiting = False  # a reader is blocked in ready.wait(): publish must notify
        self.reading = False  # a thread is inside get()/next(): another one must not be
        self.closed = False
        self.delivered = 0
        self.dropped = 0


class _End(enum.Enum):
    """Why a wait returned no frame."""

    TIMED_OUT = enum.auto()
    CLOSED = enum.auto()  # clean end: the hub or the consumer was closed
    FAILED = enum.auto()  # abnormal end: the hub was closed with an error


def _check_format(format: object) -> FrameFormat:
    if format not in _FORMATS:
        raise InvalidInputError(f"format must be 'bgr', 'rgb' or 'av', not {format!r}")
    return format


class FrameHub:
    """Fans the session's decoded frames out to consumers; one per session, across reconnects.

    :meth:`publish` runs on the loop thread; everything else is safe from any thread.
    ``blocking_guard``, if given, is called before a consumer blocks, so a session can refuse a
    blocking read on its own loop thread (which would stop the frames it waits for).
    """

    def __init__(self, *, blocking_guard: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._blocking_guard = blocking_guard
        # Replaced, never mutated, so publish iterates it without copying.
        self._inboxes: tuple[_Inbox, ...] = ()
        self._latest: _SharedFrame | None = None
        self._published = 0
        self._closed = False
        self._error: BaseException | None = None

    @property
    def published(self) -> int:
        """How many frames were published so far."""
        return self._published

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def error(self) -> BaseException | None:
        """The error the hub was closed with, or None (open, or closed cleanly)."""
        return self._error

    @property
    def active_consumers(self) -> int:
        """How many consumers currently receive frames (not closed, not garbage)."""
        return sum(1 for inbox in self._inboxes if not inbox.closed)

    def publish(self, frame: VideoFrame) -> None:
        """Offer a decoded frame to every consumer. Loop thread only; never blocks for long.

        Costs one small object and one buffer append per consumer: no pixels are converted
        here. Frames published after :meth:`close` are ignored (the loop may still be draining).
        """
        received_at = time.monotonic()
        with self._lock:
            if self._closed:
                return
            shared = _SharedFrame(frame, self._published, received_at)
            self._published += 1
            self._latest = shared
            forgotten = False
            for inbox in self._inboxes:
                if inbox.closed:  # its consumer was garbage-collected
                    forgotten = True
                    continue
                if len(inbox.buffer) == inbox.buffer.maxlen:
                    inbox.dropped += 1  # the append below evicts the oldest frame
                inbox.buffer.append(shared)
                if inbox.waiting:
                    inbox.ready.notify()
            if forgotten:
                self._inboxes = tuple(inbox for inbox in self._inboxes if not inbox.closed)

    def close(self, error: BaseException | None = None) -> None:
        """End the stream for every consumer, now and future. Idempotent: the first call wins.

        ``error=None`` is a clean end: readers get what they still hold, then iteration stops.
        With an error, held frames are discarded and readers raise ``error``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._error = error
            self._latest = None
            for inbox in self._inboxes:
                if error is not None:
                    inbox.buffer.clear()
                inbox.ready.notify_all()
            self._inboxes = ()

    def consumer(
        self,
        *,
        format: FrameFormat = "bgr",
        policy: FramePolicy = "latest",
        maxsize: int = 8,
    ) -> FrameConsumer:
        """A new, independent reader of the frames published from now on.

        ``policy="latest"`` keeps only the newest unread frame (``maxsize`` is ignored), for
        live display and control loops. ``policy="fifo"`` keeps up to ``maxsize`` frames in
        order and drops the oldest when full, for recording or analysis that wants every frame
        it can keep up with. On a closed hub the consumer sees the end at once.
        """
        format = _check_format(format)
        if policy not in _POLICIES:
            raise InvalidInputError(f"policy must be 'latest' or 'fifo', not {policy!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise InvalidInputError(f"maxsize must be an int >= 1, not {maxsize!r}")
        inbox = _Inbox(self._lock, 1 if policy == "latest" else maxsize)
        with self._lock:
            if not self._closed:
                self._inboxes = (*self._inboxes, inbox)
        return FrameConsumer(self, inbox, format)

    def latest(self, format: FrameFormat = "bgr") -> Any | None:
        """The newest published frame, without waiting; None before the first one or after
        :meth:`close`. Converted in the calling thread, and shared like a consumer's frames."""
        format = _check_format(format)
        shared = self._latest  # one attribute read: no lock needed
        return None if shared is None else shared.pixels(format)

    def latest_info(self, format: FrameFormat = "bgr") -> FrameInfo | None:
        """Like :meth:`latest`, with the frame's sequence number and times, so a control loop
        can tell how old the frame it acts on is."""
        format = _check_format(format)
        shared = self._latest
        return None if shared is None else shared.info(format)

    def _unsubscribe(self, inbox: _Inbox) -> None:
        # Caller holds self._lock.
        self._inboxes = tuple(other for other in self._inboxes if other is not inbox)


class FrameConsumer:
    """One reader's view of the stream: an iterator of frames, and a context manager.

    Get one from :meth:`FrameHub.consumer` (or the session's ``frames()``). Use it from one
    thread at a time. Counters: :attr:`delivered` frames were handed to this reader;
    :attr:`dropped` frames it never saw because it was slower than the stream (overwritten in
    latest mode, evicted in FIFO mode, or skipped by ``fresh=True``).
    """

    def __init__(self, hub: FrameHub, inbox: _Inbox, format: FrameFormat) -> None:
        self._hub = hub
        self._inbox = inbox
        self._format = format

    def __repr__(self) -> str:
        state = "closed" if self._inbox.closed else "ended" if self._hub.closed else "open"
        return (
            f"<FrameConsumer {self._format} maxsize={self._inbox.buffer.maxlen} {state} "
            f"delivered={self.delivered} dropped={self.dropped}>"
        )

    @property
    def format(self) -> FrameFormat:
        return self._format

    @property
    def delivered(self) -> int:
        """Frames handed to this reader so far."""
        return self._inbox.delivered

    @property
    def dropped(self) -> int:
        """Frames this reader never saw because it was slower than the stream."""
        return self._inbox.dropped

    @property
    def closed(self) -> bool:
        """Whether this consumer was closed (the hub's end is :attr:`FrameHub.closed`)."""
        return self._inbox.closed

    def get(self, timeout: float | None = None, *, fresh: bool = False) -> Any:
        """The next frame, waiting up to ``timeout`` seconds (None: as long as it takes).

        ``fresh=True`` skips frames published before the call and waits for a newer one.
        Raises :class:`DecartTimeoutError` on timeout, :class:`SessionClosedError` once the
        stream ended cleanly (or this consumer was closed) and nothing is left, or the error the
        stream ended with.
        """
        with self._exclusive():
            return self._take(timeout, fresh).pixels(self._format)

    def get_info(self, timeout: float | None = None, *, fresh: bool = False) -> FrameInfo:
        """Like :meth:`get`, with the frame's sequence number and timestamps."""
        with self._exclusive():
            return self._take(timeout, fresh).info(self._format)

    def read(self, timeout: float | None = None) -> tuple[bool, Any | None]:
        """OpenCV style: ``(True, frame)``, or ``(False, None)`` on timeout or once the stream
        ended (cleanly or not); see the hub's ``error`` for why."""
        with self._exclusive():
            outcome = self._wait(timeout, fresh=False)
            if isinstance(outcome, _End):
                return False, None
            return True, outcome.pixels(self._format)

    def __iter__(self) -> FrameConsumer:
        return self

    def __next__(self) -> Any:
        with self._exclusive():
            outcome = self._wait(None, fresh=False)
            if outcome is _End.FAILED:
                raise self._end_error(outcome)
            if isinstance(outcome, _End):
                raise StopIteration
            return outcome.pixels(self._format)

    def infos(self) -> Iterator[FrameInfo]:
        """Iterate :class:`FrameInfo` instead of bare frames; ends like iterating frames."""
        while True:
            with self._exclusive():
                outcome = self._wait(None, fresh=False)
                if outcome is _End.FAILED:
                    raise self._end_error(outcome)
                if isinstance(outcome, _End):
                    return
                info = outcome.info(self._format)
            yield info  # outside _exclusive: the caller's loop body is not "reading"

    def close(self) -> None:
        """Stop receiving frames and release the ones held. A reader blocked in this consumer
        wakes and sees a clean end. Idempotent."""
        inbox = self._inbox
        with self._hub._lock:
            if inbox.closed:
                return
            inbox.closed = True
            inbox.buffer.clear()
            inbox.ready.notify_all()
            self._hub._unsubscribe(inbox)

    def __enter__(self) -> FrameConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Forgotten without close() (e.g. `for f in session.frames(): break`): stop receiving.
        # No lock here: a collection can run inside publish on the loop thread, which already
        # holds the hub's lock. Marking the inbox closed is enough; publish prunes it.
        inbox = getattr(self, "_inbox", None)
        if inbox is not None and not inbox.closed:
            inbox.closed = True
            inbox.buffer.clear()

    # -- internals -------------------------------------------------------------------------

    def _take(self, timeout: float | None, fresh: bool) -> _SharedFrame:
        # The get()/get_info() flavour of _wait: every way of getting no frame is an exception.
        outcome = self._wait(timeout, fresh)
        if outcome is _End.TIMED_OUT:
            published = self._hub.published
            hint = "the stream has not started yet" if published == 0 else "the stream stalled"
            raise DecartTimeoutError(
                f"no frame within {timeout:g} s ({hint}; {published} frames published so far)"
            )
        if isinstance(outcome, _End):
            raise self._end_error(outcome)
        return outcome

    def _exclusive(self) -> _Exclusive:
        return _Exclusive(self)

    def _wait(self, timeout: float | None, fresh: bool) -> _SharedFrame | _End:
        timeout = wait_timeout(timeout)
        hub, inbox = self._hub, self._inbox
        if hub._blocking_guard is not None and timeout != 0:
            hub._blocking_guard()
        deadline = None if timeout is None else time.monotonic() + timeout
        with hub._lock:
            # Frames up to this sequence number were published before the call.
            first_fresh = hub._published if fresh else 0
            while True:
                if inbox.closed:
                    return _End.CLOSED
                if hub._error is not None:
                    return _End.FAILED
                while inbox.buffer:
                    shared = inbox.buffer.popleft()
                    if shared.seq >= first_fresh:
                        inbox.delivered += 1
                        return shared
                    inbox.dropped += 1
                if hub._closed:
                    return _End.CLOSED
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return _End.TIMED_OUT
                inbox.waiting = True
                try:
                    # Condition.wait is interruptible: Ctrl-C raises KeyboardInterrupt here.
                    inbox.ready.wait(remaining)
                finally:
                    inbox.waiting = False

    def _end_error(self, outcome: _End) -> BaseException:
        if outcome is _End.FAILED and self._hub._error is not None:
            return self._hub._error
        if self._inbox.closed:
            return SessionClosedError("this frame consumer was closed; open a new one to read")
        return SessionClosedError("the session's video stream has ended (session disconnected)")


class _Exclusive:
    """Marks a consumer as being read for the duration of one get/next, so that a second thread
    reading the same consumer fails clearly instead of taking frames from under the first."""

    __slots__ = ("_inbox", "_lock")

    def __init__(self, consumer: FrameConsumer) -> None:
        self._inbox = consumer._inbox
        self._lock = consumer._hub._lock

    def __enter__(self) -> None:
        with self._lock:
            if self._inbox.reading:
                raise InvalidInputError(
                    "another thread is already reading from this FrameConsumer; "
                    "give each thread its own consumer (session.frames() makes a new one)"
                )
            self._inbox.reading = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A plain store is atomic; the lock is only needed to make check-and-set atomic.
        self._inbox.reading = False
