"""One of a participant's two peer connections, seen from the server.

LiveKit gives every participant two (protocol.md section 9): the **publisher**, which the
client offers and the server answers (its tracks and data channels go to the server), and the
**subscriber**, which the server offers (the tracks the client receives); in
single-peer-connection mode, only the first, carrying both directions. Both trickle the
client's candidates, which may arrive before the description they belong to: libwebrtc sends
them from a task of their own, racing the offer or answer. They wait here until it is applied.

ICE gathers on the emulator's bind address only, with no STUN or TURN server, as the legacy
transport's peer connection does (``emulator/peer.py``).

Bundling is ``max-bundle``, not aiortc's default ``balanced``. The SDK's publisher offer holds
three recvonly audio and three recvonly video m-lines before its track (its single-connection
offer, or what is left of it after falling back to two connections), bundled on an audio one.
Under ``balanced`` aiortc puts each video m-line after the first on that first video m-line's
own transport and then never moves them to the bundle's, so the track's packets arrive on a
transport that has no receiver for them and are dropped. Under ``max-bundle`` every m-line
starts on the first one's transport, which is the bundle's, provided the first one created is
the first in the description: a server that offers must add its tracks before its data channels
(aiortc otherwise stops the shared transport when it applies the answer's bundle).
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCBundlePolicy, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription

from decart_sync._ice import host_addresses, rtc_configuration
from decart_sync._receivers import tune_receivers


class PeerTransport:
    """A server-side peer connection of one participant. ``on_failed`` is called (on the
    loop) when it fails or closes."""

    def __init__(self, addresses: list[str] | None, on_failed: Callable[[], None]) -> None:
        configuration = rtc_configuration([], loopback=True)
        configuration.bundlePolicy = RTCBundlePolicy.MAX_BUNDLE
        self.pc = RTCPeerConnection(configuration)
        self._addresses = addresses
        self._early: list[RTCIceCandidate | None] = []
        self._on_failed = on_failed
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._on_failed()

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    async def offer(self) -> str:
        """Create and apply an offer of everything added so far; returns its SDP."""
        with host_addresses(self._addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp  # type: ignore[no-any-return]

    async def accept_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self._apply_early_candidates()

    async def answer(self, sdp: str, attach: Callable[[RTCPeerConnection], None]) -> str:
        """Apply the client's offer, let ``attach`` take its tracks, and return the answer."""
        with host_addresses(self._addresses):
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            attach(self.pc)
            # As the legacy transport does: no input frame held back an interval, no idle
            # decoder threads.
            tune_receivers(self.pc)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._apply_early_candidates()
        return self.pc.localDescription.sdp  # type: ignore[no-any-return]

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """Add a trickled candidate (None: the client has no more)."""
        if self.pc.remoteDescription is None:
            self._early.append(candidate)
        else:
            await self.pc.addIceCandidate(candidate)

    async def _apply_early_candidates(self) -> None:
        early, self._early = self._early, []
        for candidate in early:
            await self.pc.addIceCandidate(candidate)

    async def close(self) -> None:
        await self.pc.close()
