"""A local Decart-compatible realtime server, for tests, demos and offline development.

It speaks the realtime protocol (``protocol.md``) on aiohttp + aiortc, and stands in for the
generative model with a deterministic CPU effect chosen from the session's prompt and reference
image. Start one in-process::

    from decart_sync.emulator import Emulator

    with Emulator() as emu:        # 127.0.0.1, a free port
        ...                        # emu.url, emu.realtime_url, emu.api_key

or from a shell: ``decart-sync emulator --port 8765``. It accepts the API key
``decart-emulator-key`` (:data:`DEFAULT_API_KEY`) unless started with others, and the client
tokens it issued itself. Faults (dropped connections, late acks, frozen video, rejections,
restarts) can be injected through :class:`Emulator` or the admin HTTP API (see ``admin.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from decart_sync.emulator.auth import DEFAULT_API_KEY

if TYPE_CHECKING:
    from decart_sync.emulator.faults import UnknownSession
    from decart_sync.emulator.handle import Emulator
    from decart_sync.emulator.sessions import SessionInfo

__all__ = ["DEFAULT_API_KEY", "Emulator", "SessionInfo", "UnknownSession"]

# Imported on first use, so that ``decart_sync.emulator.cli`` and the pytest plugin can report a
# missing emulator extra (aiohttp) clearly instead of failing at import.
_LAZY = {
    "Emulator": "decart_sync.emulator.handle",
    "SessionInfo": "decart_sync.emulator.sessions",
    "UnknownSession": "decart_sync.emulator.faults",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
