"""Two changes to aiortc's video receivers, for the SDK's and the emulator's peer connections.

**Frames leave the jitter buffer on their last packet.** aiortc's video jitter buffer completes a
frame only when a packet of the *next* frame arrives, so every aiortc receiver holds every frame
back by one frame interval (33 ms at 30 fps, 50 ms at 20 fps) on top of the network. Senders mark
a frame's last RTP packet with the marker bit (RFC 3550; aiortc, libwebrtc and GStreamer all do),
so a frame is complete once its marked packet and every packet before it are in.
:class:`MarkerJitterBuffer` releases it then, and otherwise keeps aiortc's rule (no marker bit, a
gap, an older frame still incomplete).

**VP8 is decoded on one thread.** aiortc opens its VP8 decoder with FFmpeg's automatic thread
count, which gives libvpx one thread per core. libvpx decodes a frame on several threads only
when it has several token partitions, and WebRTC's VP8 encoders (aiortc's, libwebrtc's) write
one, so the extra threads never work, yet they live as long as the session: one per session on
two cores, seven on eight. (H.264 keeps FFmpeg's choice: x264's zero-latency streams are sliced,
and slice threads do speed up their decoding.)

aiortc offers no way to choose either, so :func:`tune_receivers` reaches into private attributes
of the receivers it is given, and wraps aiortc's ``get_decoder`` so that only decoders made on
those receivers' decoder threads change; other aiortc code in the process is left alone. Each
change is made only when aiortc looks exactly as this module expects, and a jitter buffer that
meets anything unexpected falls back to aiortc's own rule for good: on another aiortc the worst
outcome is the old latency and thread count, never a lost or corrupt frame.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from decart_sync._redact import get_logger

_log = get_logger(__name__)

# Where RTCRtpReceiver keeps its jitter buffer and its decoder thread (name-mangled attributes).
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"


# --------------------------------------------------------------------------- the jitter buffer


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, releasing a frame on its marked last packet."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, is_video=True)
        self.released_on_marker = 0
        self._marker_release = True

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is None or not frame.data:
            frame = self._marked_frame()
        if frame is not None and not frame.data:
            # Padding only: libwebrtc probes bandwidth with payload-less packets on the media
            # stream when no RTX was negotiated (the livekit SDK's publisher offers none). Its
            # empty "frame" would reach FFmpeg as an end-of-stream packet, after which the
            # decoder refuses every later frame.
            frame = None
        return pli_flag, frame

    def _marked_frame(self) -> JitterFrame | None:
        if not self._marker_release:
            return None
        try:
            return self._complete_frame()
        except Exception:  # an aiortc whose buffer works differently: keep its own rule
            self._marker_release = False
            _log.debug("releasing frames on the marker bit is off", exc_info=True)
            return None

    def _complete_frame(self) -> JitterFrame | None:
        """The oldest frame, removed from the buffer, if every packet of it up to the marked
        one is in (checked after every packet, so a reordered packet completes it too)."""
        if self._origin is None:
            return None
        first = self._packets[self._origin % self.capacity]
        if first is None:
            return None
        packets = []
        for offset in range(self.capacity):
            held = self._packets[(self._origin + offset) % self.capacity]
            if held is None or held.timestamp != first.timestamp:
                return None  # a gap, or no marked packet yet: aiortc's rule decides
            packets.append(held)
            if held.marker:
                break
        else:
            return None
        self.remove(len(packets))
        self.released_on_marker += 1
        # _data: the depayloaded payload aiortc's receiver attaches to each packet.
        data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
        return JitterFrame(data=data, timestamp=first.timestamp)


def _release_on_marker(receiver: RTCRtpReceiver) -> bool:
    current = getattr(receiver, _JITTER_BUFFER, None)
    if type(current) is not JitterBuffer:
        return False  # already swapped, or not the buffer this module knows
    if getattr(current, "_origin", "?") is not None or not hasattr(current, "_packets"):
        return False  # packets already went through it, or its fields are not the known ones
    setattr(receiver, _JITTER_BUFFER, MarkerJitterBuffer(current.capacity))
    return True


# --------------------------------------------------------------------------- the decoder

# The decoder threads of receivers given to tune_receivers(); a thread leaves with its receiver.
_single_threaded: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_install_lock = threading.Lock()
_installed = False


def _install_decoder_hook() -> None:
    """Wrap aiortc's ``get_decoder`` once, so decoders made on registered threads can change."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import aiortc.rtcrtpreceiver as receiver_module

        original: Callable[[Any], Any] = receiver_module.get_decoder  # type: ignore[attr-defined]

        def get_decoder(codec: Any) -> Any:
            decoder = original(codec)
            if threading.current_thread() in _single_threaded and type(decoder) is Vp8Decoder:
                context = getattr(decoder, "codec", None)
                if context is not None and not context.is_open:
                    context.thread_count = 1
            return decoder

        receiver_module.get_decoder = get_decoder  # type: ignore[attr-defined]
        _installed = True


def _decode_on_one_thread(receiver: RTCRtpReceiver) -> bool:
    """Register the decoder thread ``receiver`` starts when it starts receiving."""
    if "receive" in vars(receiver):
        return False  # already done
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        # The thread exists now, and nothing has been decoded yet: packets are read on this
        # loop, which has not run since.
        thread = getattr(receiver, _DECODER_THREAD, None)
        if isinstance(thread, threading.Thread):
            _single_threaded.add(thread)

    _install_decoder_hook()
    receiver.receive = receive  # type: ignore[method-assign]
    return True


# --------------------------------------------------------------------------- both


def tune_receivers(pc: RTCPeerConnection) -> int:
    """Apply both changes to each video receiver of ``pc``; call it once the transceivers exist
    and before media flows. Returns how many receivers got the marker-bit jitter buffer."""
    swapped = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        swapped += _release_on_marker(transceiver.receiver)
        _decode_on_one_thread(transceiver.receiver)
    return swapped
