"""Frames leave the receive buffer on their marked last packet, never incomplete."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from decart_sync._jitter import MarkerJitterBuffer, release_on_marker

# A packet: (sequence number, RTP timestamp, depayloaded data, marker bit).
Packet = tuple[int, int, bytes, int]


def feed(buffer: JitterBuffer, *packets: Packet) -> list[JitterFrame | None]:
    """What the buffer hands to the decoder after each packet, as aiortc's receiver feeds it."""
    out = []
    for sequence, timestamp, data, marker in packets:
        rtp = RtpPacket(sequence_number=sequence, timestamp=timestamp, marker=marker)
        rtp._data = data  # type: ignore[attr-defined]  # what aiortc's receiver attaches
        out.append(buffer.add(rtp)[1])
    return out


def test_a_frame_is_released_by_its_marked_packet_not_by_the_next_frame() -> None:
    buffer = MarkerJitterBuffer(64)
    out = feed(buffer, (10, 9000, b"a", 0), (11, 9000, b"b", 0), (12, 9000, b"c", 1))
    assert out[:2] == [None, None]
    assert out[2] is not None and (out[2].data, out[2].timestamp) == (b"abc", 9000)
    # The next frame follows the same way, and nothing of the first is released twice.
    nxt = feed(buffer, (13, 12000, b"d", 0), (14, 12000, b"e", 1))
    assert nxt[0] is None and nxt[1] is not None and nxt[1].data == b"de"
    assert buffer.released_on_marker == 2


def test_aiortcs_own_buffer_holds_the_same_frame_until_the_next_one_starts() -> None:
    """The one-interval hold this module exists to remove (if aiortc fixes it, this fails and
    the swap can go)."""
    buffer = JitterBuffer(64, is_video=True)
    assert feed(buffer, (10, 9000, b"a", 0), (11, 9000, b"b", 1)) == [None, None]
    (late,) = feed(buffer, (12, 12000, b"c", 0))
    assert late is not None and late.data == b"ab"


def test_a_reordered_packet_completes_its_frame_when_it_arrives() -> None:
    buffer = MarkerJitterBuffer(64)
    out = feed(buffer, (10, 9000, b"a", 0), (12, 9000, b"c", 1), (11, 9000, b"b", 0))
    assert out[:2] == [None, None]
    assert out[2] is not None and out[2].data == b"abc"


def test_a_frame_with_a_lost_packet_is_never_released_by_the_marker() -> None:
    buffer = MarkerJitterBuffer(64)
    out = feed(buffer, (10, 9000, b"a", 0), (12, 9000, b"c", 1), (13, 12000, b"d", 1))
    assert out == [None, None, None]  # 11 is missing: no corrupt frame reaches the decoder
    assert buffer.released_on_marker == 0


def test_without_marker_bits_the_buffer_keeps_aiortcs_rule() -> None:
    buffer = MarkerJitterBuffer(64)
    out = feed(buffer, (10, 9000, b"a", 0), (11, 9000, b"b", 0), (12, 12000, b"c", 0))
    assert out[:2] == [None, None]
    assert out[2] is not None and (out[2].data, out[2].timestamp) == (b"ab", 9000)
    assert buffer.released_on_marker == 0


def test_only_video_receivers_get_the_buffer_and_only_once() -> None:
    async def swap() -> tuple[int, int, dict[str, type]]:
        pc = RTCPeerConnection()  # aiortc wants the loop that will run it
        try:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            first, again = release_on_marker(pc), release_on_marker(pc)
            kinds = {
                t.kind: type(t.receiver._RTCRtpReceiver__jitter_buffer)  # type: ignore[attr-defined]
                for t in pc.getTransceivers()
            }
            return first, again, kinds
        finally:
            await pc.close()

    first, again, kinds = asyncio.run(swap())
    assert (first, again) == (1, 0)
    assert kinds == {"video": MarkerJitterBuffer, "audio": JitterBuffer}
