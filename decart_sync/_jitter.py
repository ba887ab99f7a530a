"""Hand a received video frame to the decoder as soon as its last packet is in.

aiortc's video jitter buffer completes a frame only when a packet of the *next* frame arrives,
so every aiortc receiver holds every frame back by one frame interval (33 ms at 30 fps, 50 ms at
20 fps), on top of the network. Senders mark a frame's last RTP packet with the marker bit
(RFC 3550; aiortc, libwebrtc and GStreamer all do), so a frame is complete once its marked
packet and every packet before it are in. :class:`MarkerJitterBuffer` releases it then, and
otherwise keeps aiortc's rule (no marker bit, a gap, an older frame still incomplete).

aiortc offers no way to choose a receiver's jitter buffer, so :func:`release_on_marker` swaps a
private attribute. It does so only when the receiver holds exactly aiortc's ``JitterBuffer``
with the fields this module relies on, and a buffer that meets anything unexpected falls back to
aiortc's own rule for good: on another aiortc the worst outcome is the old latency, never a lost
or corrupt frame.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from decart_sync._redact import get_logger

_log = get_logger(__name__)

# Where RTCRtpReceiver keeps its jitter buffer (a name-mangled private attribute).
_RECEIVER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, releasing a frame on its marked last packet."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, is_video=True)
        self.released_on_marker = 0
        self._marker_release = True

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is not None or not self._marker_release:
            return pli_flag, frame
        try:
            return pli_flag, self._complete_frame()
        except Exception:  # an aiortc whose buffer works differently: keep its own rule
            self._marker_release = False
            _log.debug("releasing frames on the marker bit is off", exc_info=True)
            return pli_flag, None

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


def release_on_marker(pc: RTCPeerConnection) -> int:
    """Give each video receiver of ``pc`` a :class:`MarkerJitterBuffer`; call it once the
    transceivers exist and before media flows. Returns how many receivers got one."""
    swapped = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        current = getattr(receiver, _RECEIVER_ATTRIBUTE, None)
        if transceiver.kind != "video" or type(current) is not JitterBuffer:
            continue
        if getattr(current, "_origin", "?") is not None or not hasattr(current, "_packets"):
            continue  # packets already went through it, or not the buffer this module knows
        setattr(receiver, _RECEIVER_ATTRIBUTE, MarkerJitterBuffer(current.capacity))
        swapped += 1
    return swapped
