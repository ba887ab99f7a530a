"""The SDK's receivers: frames leave the jitter buffer on their marked last packet, never
incomplete, and VP8 is decoded on one thread."""

from __future__ import annotations

import asyncio
import threading

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from decart_sync._receivers import (
    MarkerJitterBuffer,
    _install_decoder_hook,
    _single_threaded,
    tune_receivers,
)

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


def test_only_video_receivers_are_tuned_and_only_once() -> None:
    async def tune() -> tuple[int, int, dict[str, type], dict[str, bool]]:
        pc = RTCPeerConnection()  # aiortc wants the loop that will run it
        try:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            first, again = tune_receivers(pc), tune_receivers(pc)
            buffers = {
                t.kind: type(t.receiver._RTCRtpReceiver__jitter_buffer)  # type: ignore[attr-defined]
                for t in pc.getTransceivers()
            }
            hooked = {t.kind: "receive" in vars(t.receiver) for t in pc.getTransceivers()}
            return first, again, buffers, hooked
        finally:
            await pc.close()

    first, again, buffers, hooked = asyncio.run(tune())
    assert (first, again) == (1, 0)
    assert buffers == {"video": MarkerJitterBuffer, "audio": JitterBuffer}
    assert hooked == {"video": True, "audio": False}


def decoder_made_on(thread_is_registered: bool, mime: str) -> tuple[str, int]:
    """Which decoder aiortc's (wrapped) get_decoder makes on a decoder thread, and its threads."""
    import aiortc.rtcrtpreceiver as receiver_module

    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=96)
    made: list[tuple[str, int]] = []

    def decoder_thread() -> None:
        decoder = receiver_module.get_decoder(codec)
        made.append((type(decoder).__name__, decoder.codec.thread_count))  # type: ignore[attr-defined]

    thread = threading.Thread(target=decoder_thread, name="video-decoder")
    if thread_is_registered:
        _single_threaded.add(thread)
    thread.start()
    thread.join(10)
    return made[0]


def test_vp8_is_decoded_on_one_thread_only_on_the_sdks_receivers() -> None:
    _install_decoder_hook()
    assert decoder_made_on(True, "video/VP8") == ("Vp8Decoder", 1)
    assert decoder_made_on(False, "video/VP8") == ("Vp8Decoder", 0)  # FFmpeg's choice: per core
    assert decoder_made_on(True, "video/H264") == ("H264Decoder", 0)  # sliced: threads help


def test_a_receiving_session_registers_its_decoder_thread() -> None:
    """A real peer connection pair on loopback: once the receiver has started, its decoder
    thread is one that gets single-threaded VP8 decoders."""
    from decart_sync import _ice
    from decart_sync.media import test_pattern

    async def exchange() -> bool:
        config = _ice.rtc_configuration([], loopback=True)
        sender, receiver = RTCPeerConnection(config), RTCPeerConnection(config)
        arrived: asyncio.Queue[object] = asyncio.Queue()
        receiver.on("track", arrived.put_nowait)
        source = test_pattern(width=64, height=48, fps=30)
        try:
            sender.addTrack(source.open_track(width=64, height=48, fps=30, executor=None))
            with _ice.host_addresses(["127.0.0.1"]):
                await sender.setLocalDescription(await sender.createOffer())
                await receiver.setRemoteDescription(sender.localDescription)
                tune_receivers(receiver)
                await receiver.setLocalDescription(await receiver.createAnswer())
                await sender.setRemoteDescription(receiver.localDescription)
            track = await asyncio.wait_for(arrived.get(), 20)
            await asyncio.wait_for(track.recv(), 20)  # type: ignore[attr-defined]
            (transceiver,) = receiver.getTransceivers()
            thread = transceiver.receiver._RTCRtpReceiver__decoder_thread  # type: ignore[attr-defined]
            return thread in _single_threaded
        finally:
            source.close()
            await sender.close()
            await receiver.close()

    assert asyncio.run(exchange())
