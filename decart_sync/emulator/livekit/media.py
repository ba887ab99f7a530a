"""What a room carries: the session's input video in, the transformed video out.

A room does not know about effects or pacing. It is handed a :class:`RoomMedia`, and calls
:meth:`~RoomMedia.attach_input` with the track its producer publishes and
:meth:`~RoomMedia.output` once per subscriber. :class:`PipelineMedia` is the one the emulator
uses: a session's :class:`~decart_sync.emulator.pipeline.FramePipeline`, whose output every
subscriber reads through one ``MediaRelay``, exactly as the legacy transport's producer and
viewers do, so both transports show the same frames at the same pace.
"""

from __future__ import annotations

from typing import Protocol

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from decart_sync.emulator.pipeline import FramePipeline


class RoomMedia(Protocol):
    """The media behind one room. Every method is called on the emulator's loop."""

    @property
    def width(self) -> int:
        """Width of the transformed video (announced in the track's info)."""

    @property
    def height(self) -> int:
        """Height of the transformed video."""

    def attach_input(self, track: MediaStreamTrack) -> None:
        """Start reading the producer's published video track until it ends."""

    def output(self) -> MediaStreamTrack:
        """A new reader of the transformed video, for one subscriber."""


class PipelineMedia:
    """A session's frame pipeline as a room's media."""

    def __init__(self, pipeline: FramePipeline, relay: MediaRelay | None = None) -> None:
        self.pipeline = pipeline
        # Share the session's relay when it has one, so legacy viewers and room subscribers
        # read the same proxy of the output track.
        self.relay = relay if relay is not None else MediaRelay()

    @property
    def width(self) -> int:
        return self.pipeline.model.width

    @property
    def height(self) -> int:
        return self.pipeline.model.height

    def attach_input(self, track: MediaStreamTrack) -> None:
        self.pipeline.attach_input(track)

    def output(self) -> MediaStreamTrack:
        # Unbuffered: a subscriber that falls behind gets the newest frame, not a backlog.
        return self.relay.subscribe(self.pipeline.output, buffered=False)
