"""ICE configuration, including loopback-only candidate gathering for local servers.

aioice gathers host candidates from every interface *except* 127.0.0.1, and aiortc falls back to a
public STUN server when it is given no ICE servers at all. Against a server on this machine (the
emulator) both are wrong: the only address worth offering is the loopback one, and nothing should
be sent anywhere else. Gathering is scoped with a context variable, so one process can hold a
loopback session (or run the emulator) next to a session to a remote service.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import SessionDescription, candidate_from_sdp, candidate_to_sdp

from decart_sync._protocol import OFFICIAL_STUN_URL, IceCandidate

# The host addresses ICE may offer inside the current context; None means aioice's own choice.
_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "decart_sync_ice_host_addresses", default=None
)
_install_lock = threading.Lock()
_installed = False


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _install() -> None:
    """Wrap aioice's address discovery once, so the context variable can narrow it."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import aioice.ice

        original = aioice.ice.get_host_addresses

        def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            scoped = _HOST_ADDRESSES.get()
            if scoped is None:
                return list(original(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
            return [a for a in scoped if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]

        aioice.ice.get_host_addresses = get_host_addresses
        _installed = True


@contextlib.contextmanager
def host_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block (and tasks it starts), ICE gathers host candidates on ``addresses``
    only. ``None`` leaves aioice's own discovery in place."""
    _install()
    token = _HOST_ADDRESSES.set(tuple(addresses) if addresses is not None else None)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def loopback_address_for(host: str) -> str:
    """The loopback address to gather on when talking to ``host`` on this machine."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        try:
            return socket.getaddrinfo("localhost", None, socket.AF_INET)[0][4][0]  # type: ignore[return-value]
        except OSError:
            return "127.0.0.1"
    return "::1" if ":" in host else "127.0.0.1"


def rtc_configuration(ice_servers: Sequence[Any] | None, *, loopback: bool) -> RTCConfiguration:
    """The peer connection's configuration.

    ``ice_servers`` may hold ``RTCIceServer`` objects or URL strings. ``None`` means: no servers
    for a loopback peer, the official STUN server otherwise. An empty list means none at all
    (aiortc would otherwise substitute its own default).
    """
    if ice_servers is None:
        servers = [] if loopback else [RTCIceServer(OFFICIAL_STUN_URL)]
    else:
        servers = [s if isinstance(s, RTCIceServer) else RTCIceServer(str(s)) for s in ice_servers]
    return RTCConfiguration(iceServers=servers)


# --------------------------------------------------------------------------- trickle ICE
#
# aiortc gathers every candidate before setLocalDescription() returns and writes them into the
# SDP; it never emits them one by one. The protocol still has both sides trickle theirs as
# ``ice-candidate`` messages, so each side sends the candidates of its own SDP after it.
# Repeating a candidate the SDP already holds is harmless: ICE ignores a pair it already has.


def sdp_candidates(sdp: str) -> list[IceCandidate]:
    """The candidates written in a session description, one ``ice-candidate`` message each, in
    the browser's form (``candidate:...``) with their m-line index and mid."""
    description = SessionDescription.parse(sdp)
    return [
        IceCandidate(f"candidate:{candidate_to_sdp(c)}", index, media.rtp.muxId or str(index))
        for index, media in enumerate(description.media)
        for c in media.ice_candidates
    ]


def parse_candidate(candidate: IceCandidate) -> RTCIceCandidate | None:
    """A trickled candidate as aiortc wants it; None for an end-of-candidates marker (an empty
    candidate string). Raises ValueError for a candidate line that cannot be parsed."""
    line = candidate.candidate.strip()
    if line.startswith("candidate:"):
        line = line[len("candidate:") :]
    if not line:
        return None
    try:
        parsed = candidate_from_sdp(line)
    except (AssertionError, ValueError, IndexError):
        raise ValueError(f"cannot parse candidate {candidate.candidate!r}") from None
    parsed.sdpMid = candidate.sdpMid
    parsed.sdpMLineIndex = candidate.sdpMLineIndex
    if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
        # A browser may name neither; with BUNDLE every m-line shares the first one's transport,
        # which is where aiortc must be told to look (it refuses a candidate naming no m-line).
        parsed.sdpMLineIndex = 0
    return parsed
