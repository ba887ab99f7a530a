"""One session's WebRTC peer connection on the server side: the answer to a client's offer.

ICE gathers host candidates on the emulator's bind address only (aioice would otherwise offer
every interface but loopback), with no STUN or TURN server, so nothing leaves this machine. The
answer's candidates are also returned separately, because the real service trickles them as
``ice-candidate`` messages and clients must cope with that.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription

from decart_sync._ice import host_addresses, loopback_address_for, rtc_configuration, sdp_candidates
from decart_sync._protocol import IceCandidate
from decart_sync._receivers import tune_receivers
from decart_sync._redact import get_logger

_log = get_logger(__name__)

_ANY_ADDRESS = ("0.0.0.0", "::", "")


def gathering_addresses(bind_host: str) -> list[str] | None:
    """The addresses ICE may offer for a server bound to ``bind_host`` (None: aioice's choice)."""
    if bind_host in _ANY_ADDRESS:
        return None
    if bind_host.lower() == "localhost":
        return [loopback_address_for(bind_host)]
    return [bind_host.strip("[]")]


class PeerLink:
    """A server-side peer connection. ``on_ended(link)`` is called (on the loop) when it fails
    or closes, whoever closed it."""

    def __init__(self, bind_host: str, on_ended: Callable[[PeerLink], None]) -> None:
        self.pc = RTCPeerConnection(rtc_configuration([], loopback=True))
        self._addresses = gathering_addresses(bind_host)
        self._on_ended = on_ended
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._on_ended(self)

    async def answer(self, offer_sdp: str, attach: Callable[[RTCPeerConnection], None]) -> str:
        """Apply the client's offer, let ``attach`` add and take tracks, and return the answer
        SDP. Raises on an offer that cannot be applied."""
        with host_addresses(self._addresses):
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            attach(self.pc)
            # The real service holds no input frame back one interval, and starts no idle
            # decoder threads; nor do we.
            tune_receivers(self.pc)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp  # type: ignore[no-any-return]

    def answer_candidates(self) -> list[IceCandidate]:
        """The candidates of the local answer, one message's worth each."""
        return sdp_candidates(self.pc.localDescription.sdp)

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        await self.pc.addIceCandidate(candidate)

    async def close(self) -> None:
        await self.pc.close()
