"""One LiveKit room: a session's producer, its viewers, and the inference server's video.

The inference server is not a connection: it is a participant every joiner is told about
(identity ``inference-server-emulator``, one video track), whose track each subscriber
receives from the room's :class:`~decart_sync.emulator.livekit.media.RoomMedia`. The producer
is the participant whose identity the room was opened for; the first video track it publishes
feeds the media (a reconnected producer's new track takes over once the old one has left).
Every other published track is read and dropped, and nothing a participant publishes is
forwarded to anyone: Decart's clients subscribe to the inference server only.

Identifiers follow LiveKit's shapes (``RM_``, ``PA_``, ``TR_`` prefixes): the ``livekit`` SDK
refuses, or panics on, sids without them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from aiortc.mediastreams import MediaStreamTrack
from livekit.protocol import models, rtc

from decart_sync._redact import get_logger
from decart_sync._tasks import read_track
from decart_sync.emulator.livekit.media import RoomMedia

if TYPE_CHECKING:
    from decart_sync.emulator.livekit.participant import Participant

_log = get_logger(__name__)

#: The identity of the participant that publishes the transformed video; clients look for the
#: ``inference-server-`` prefix (protocol.md section 3).
INFERENCE_IDENTITY: Final = "inference-server-emulator"
INFERENCE_TRACK_NAME: Final = "inference-video"


def new_sid(prefix: str) -> str:
    """A LiveKit-shaped identifier: ``prefix`` (``RM_``, ``PA_``, ``TR_``) and 12 characters."""
    return prefix + secrets.token_hex(6)


class Room:
    """A room hosted for one session. Used on the emulator's loop only."""

    def __init__(
        self, name: str, session_id: str, media: RoomMedia, producer_identity: str
    ) -> None:
        self.name = name
        self.sid = new_sid("RM_")
        self.session_id = session_id
        self.media = media
        self.producer_identity = producer_identity
        self.created_at = time.time()
        self.participants: dict[str, Participant] = {}
        self.closed = False
        self.inference_sid = new_sid("PA_")
        self.video_track_sid = new_sid("TR_")
        # The participant whose video feeds the media, while it is in the room.
        self._feeder: str | None = None
        self._drains: set[asyncio.Task[None]] = set()

    @property
    def viewers(self) -> int:
        """Participants in the room other than the producer."""
        return sum(1 for p in self.participants.values() if p.identity != self.producer_identity)

    # ------------------------------------------------------------------ descriptions

    def info(self) -> models.Room:
        return models.Room(
            sid=self.sid,
            name=self.name,
            creation_time=int(self.created_at),
            creation_time_ms=int(self.created_at * 1000),
            num_participants=len(self.participants),
            num_publishers=1 + sum(1 for p in self.participants.values() if p.tracks),
        )

    def inference_info(self) -> models.ParticipantInfo:
        video = models.TrackInfo(
            sid=self.video_track_sid,
            type=models.TrackType.VIDEO,
            name=INFERENCE_TRACK_NAME,
            width=self.media.width,
            height=self.media.height,
            source=models.TrackSource.CAMERA,
            mime_type="video/VP8",
        )
        return models.ParticipantInfo(
            sid=self.inference_sid,
            identity=INFERENCE_IDENTITY,
            name=INFERENCE_IDENTITY,
            state=models.ParticipantInfo.State.ACTIVE,
            tracks=[video],
            joined_at=int(self.created_at),
            joined_at_ms=int(self.created_at * 1000),
            version=1,
            permission=models.ParticipantPermission(can_publish=True, can_subscribe=False),
            is_publisher=True,
            kind=models.ParticipantInfo.Kind.STANDARD,
        )

    def others(self, participant: Participant) -> list[models.ParticipantInfo]:
        """Everyone ``participant`` shares the room with, the inference server first."""
        return [self.inference_info()] + [
            p.info() for p in self.participants.values() if p is not participant
        ]

    # ------------------------------------------------------------------ membership

    async def admit(self, participant: Participant) -> None:
        """Add ``participant``; one already here with its identity is sent away, as LiveKit
        does (the newer connection is a reconnect of the same client)."""
        for existing in list(self.participants.values()):
            if existing.identity == participant.identity:
                await existing.close(models.DisconnectReason.DUPLICATE_IDENTITY)
        self.participants[participant.sid] = participant

    async def announce(self, participant: Participant) -> None:
        """Tell everyone else what ``participant`` looks like now."""
        await self._broadcast(
            (p for p in self.participants.values() if p is not participant),
            update=rtc.ParticipantUpdate(participants=[participant.info()]),
        )

    async def remove(self, participant: Participant) -> None:
        if self.participants.pop(participant.sid, None) is None:
            return
        if self._feeder == participant.sid:
            self._feeder = None
        await self._broadcast(
            self.participants.values(),
            update=rtc.ParticipantUpdate(participants=[participant.info()]),
        )

    async def _broadcast(self, to: Iterable[Participant], **message: Any) -> None:
        for participant in list(to):
            await participant.socket.send(**message)

    # ------------------------------------------------------------------ media

    def take_track(self, participant: Participant, track: MediaStreamTrack) -> None:
        """A track ``participant`` published arrived: feed the media or drop it."""
        feeds = (
            track.kind == "video"
            and participant.identity == self.producer_identity
            and self._feeder is None
        )
        if feeds:
            self._feeder = participant.sid
            self.media.attach_input(track)
            _log.info("room %s: %s's video feeds the model", self.name, participant.identity)
            return
        # Someone must read every remote track, or aiortc queues its frames without bound.
        task = asyncio.ensure_future(read_track(track))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    # ------------------------------------------------------------------ lifetime

    async def close(self) -> None:
        """Send every participant away (reason ``ROOM_DELETED``). Idempotent."""
        if self.closed:
            return
        self.closed = True
        for participant in list(self.participants.values()):
            await participant.close(models.DisconnectReason.ROOM_DELETED)
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
