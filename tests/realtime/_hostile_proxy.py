"""A hostile man in the middle for the control WebSocket: tests make a server misbehave with it.

It forwards the SDK's control WebSocket to a real emulator and back, message by message, and lets
a test inject text of its own to the client or rewrite what the server sends. Media does not pass
through it: the SDP it forwards points aiortc straight at the emulator.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import aiohttp
from aiohttp import web

#: Rewrites one server -> client text message; None drops it.
Rewrite = Callable[[str], "str | None"]


class HostileProxy:
    """Runs on a thread of its own; use as a context manager."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")  # the emulator's ws:// realtime base
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-proxy")
        self._runner: web.AppRunner | None = None
        self._clients: list[web.WebSocketResponse] = []
        self.rewrite: Rewrite | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def inject(self, text: str) -> int:
        """Send ``text`` to every connected client, as if the server had; how many got it."""

        async def send() -> int:
            for ws in self._clients:
                await ws.send_str(text)
            return len(self._clients)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        for ws in list(self._clients):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self._upstream + request.path_qs, max_msg_size=0) as server,
        ):
            self._clients.append(client)
            try:
                await asyncio.wait(
                    {
                        asyncio.ensure_future(self._pump_up(client, server)),
                        asyncio.ensure_future(self._pump_down(server, client)),
                    },
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                self._clients.remove(client)
        await client.close()
        return client

    @staticmethod
    async def _pump_up(
        client: web.WebSocketResponse, server: aiohttp.ClientWebSocketResponse
    ) -> None:
        async for msg in client:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await server.send_str(msg.data)

    async def _pump_down(
        self, server: aiohttp.ClientWebSocketResponse, client: web.WebSocketResponse
    ) -> None:
        async for msg in server:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            text = msg.data if self.rewrite is None else self.rewrite(msg.data)
            if text is not None:
                await client.send_str(text)
