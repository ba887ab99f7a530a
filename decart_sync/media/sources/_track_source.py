"""A user's aiortc video track as a source: drained continuously on the loop thread, its
newest frame sent as it arrives."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_sync.errors import InvalidInputError
from decart_sync.media.sources._convert import checked_frame
from decart_sync.media.sources._feed import BadFrame, EndOfStream, SourceFailed
from decart_sync.media.sources._latest import InputFrame, LatestSource

__all__ = ["TrackSource"]


class TrackSource(LatestSource):
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
        # The newest frame from the given track, or why it cannot be sent (raised when taken).
        self._latest: InputFrame | BadFrame | None = None
        self._latest_taken = False
        self._input_ended = False
        self._failure: SourceFailed | None = None

    def _track_opened(self) -> None:
        super()._track_opened()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(
                self._drain(), name="decart-sync track source"
            )

    def _newest(self) -> InputFrame | None:
        if self._failure is not None:
            raise self._failure
        # When the given track ends, its last frame still goes out once.
        if self._closed or (self._input_ended and (self._latest_taken or self._latest is None)):
            raise EndOfStream
        self._latest_taken = True
        if isinstance(self._latest, BadFrame):
            raise self._latest
        return self._latest

    def _has_news(self) -> bool:
        unsent = self._latest is not None and not self._latest_taken
        return unsent or self._input_ended or self._closed

    async def _drain(self) -> None:
        try:
            while not self._closed:
                frame = await self._input.recv()
                try:
                    self._latest = checked_frame(frame)
                except BadFrame as bad:
                    self._latest = bad
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

        self._on_track_loop(stop)
