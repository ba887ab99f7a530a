"""Sources read with one blocking call per frame, in the executor: the base of files, cameras
and the test pattern, and the two a user hands over directly (an iterable of frames, a
``read() -> (ok, frame)`` capture)."""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

import av

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._base import VideoSource
from decart_sync.media.sources._convert import PixelFormat, check_pixel_format, to_track_frame
from decart_sync.media.sources._feed import EndOfStream, Pacing, SourceFailed

__all__ = ["CaptureSource", "IterableSource", "PullSource"]


class PullSource(VideoSource):
    """A source read with a blocking call per frame, in the executor, paced ``READ_AHEAD``
    (the next frame waits for the rate) or ``WHEN_DUE`` (read when the rate allows one)."""

    def __init__(
        self, name: str, pixel_format: PixelFormat = "bgr24", pacing: Pacing = Pacing.READ_AHEAD
    ) -> None:
        check_pixel_format(pixel_format)
        if pacing is Pacing.ON_ARRIVAL or not isinstance(pacing, Pacing):
            raise InvalidInputError(
                f"a source that is read per frame is paced READ_AHEAD or WHEN_DUE, got {pacing!r}"
            )
        super().__init__(name, pacing)
        self._pixel_format: str = pixel_format

    @abc.abstractmethod
    def _read(self, fps: int) -> object:
        """The next frame (numpy array or av.VideoFrame). Blocking; runs in the executor with
        the read lock held. Raises EndOfStream at a normal end."""

    async def next_frame(
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


class IterableSource(PullSource):
    """Frames from an iterable or generator of HxWx3 uint8 numpy arrays (or av.VideoFrames).

    The track ends when the iterable runs out. ``close()`` closes a generator, so its
    ``finally`` blocks run. By default the next frame is taken ahead and waits for the model's
    rate; with ``pacing=Pacing.WHEN_DUE`` it is taken only when its frame is due (for frames
    that should be as fresh as possible when sent, such as a stamped clock).
    """

    def __init__(
        self,
        frames: Iterable[Any],
        *,
        pixel_format: PixelFormat = "bgr24",
        pacing: Pacing = Pacing.READ_AHEAD,
    ) -> None:
        super().__init__(f"iterable {type(frames).__name__}", pixel_format, pacing)
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


class CaptureSource(PullSource):
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
