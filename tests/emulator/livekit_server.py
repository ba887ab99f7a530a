"""A LiveKit room server for tests: a ``RoomHost`` on an aiohttp app, on a loop thread, hosting
one session's room fed by a real ``FramePipeline``. What the control channel will do for a
``livekit_join``, done directly, so the rooms can be tested on their own."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from decart_sync._loop import LoopThread
from decart_sync.emulator.effects import effect_for
from decart_sync.emulator.livekit import PipelineMedia, RoomHost, RoomTicket
from decart_sync.emulator.pipeline import FramePipeline
from decart_sync.models import ModelDefinition

T = TypeVar("T")

# Small, so that a 2-core machine renders, encodes and decodes it with time to spare.
MODEL = ModelDefinition("lucy-2.1", "/v1/stream", 30, 320, 176)
CALL_TIMEOUT = 15.0


class RoomServer:
    """``with RoomServer() as server:`` serves one room on 127.0.0.1 and a free port;
    ``server.ticket`` is the producer's ticket."""

    def __init__(self, model: ModelDefinition = MODEL, session_id: str = "test-session") -> None:
        self.model = model
        self.session_id = session_id
        self.port = 0
        self._loop = LoopThread("livekit-test-server")
        self._executor = concurrent.futures.ThreadPoolExecutor(2, "livekit-test-render")
        self._runner: web.AppRunner | None = None
        self.host: RoomHost | None = None
        self.pipeline: FramePipeline | None = None
        self.ticket: RoomTicket | None = None

    def __enter__(self) -> RoomServer:
        self._loop.acquire()
        try:
            self.ticket = self.call(self._start)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop.running:
            self.call(self._stop)
            self._loop.release()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def call(self, action: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``action()`` on the server's loop and return its result."""
        return self._loop.run(action(), timeout=CALL_TIMEOUT)

    def submit(self, action: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        """Start ``action()`` on the server's loop without waiting for it."""
        return self._loop.submit(action())

    async def _start(self) -> RoomTicket:
        app = web.Application()
        self.host = RoomHost(public_url=lambda: f"ws://127.0.0.1:{self.port}")
        self.host.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.pipeline = FramePipeline(self.model, self._executor, lambda: None)
        return self.host.open_room(self.session_id, PipelineMedia(self.pipeline))

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # closes the rooms (on_shutdown)
        if self.pipeline is not None:
            await self.pipeline.close()

    def set_prompt(self, prompt: str | None) -> None:
        """Change the effect, as an acknowledged ``prompt`` message does."""
        pipeline = self.pipeline
        assert pipeline is not None

        async def change() -> None:
            await pipeline.set_effect(effect_for(prompt, None))

        self.call(change)

    def frames_in(self) -> int:
        """How many input frames the model has decoded so far."""
        pipeline = self.pipeline
        assert pipeline is not None

        async def count() -> int:
            return pipeline.frames_in

        return self.call(count)

    def connections(self) -> dict[str, int]:
        """Each participant in the room (by identity) and how many peer connections the
        server holds for it: 1 in single-peer-connection mode, 2 with ``/rtc``."""
        host, ticket = self.host, self.ticket
        assert host is not None and ticket is not None

        async def count() -> dict[str, int]:
            room = host.rooms[ticket.room_name]
            return {
                p.identity: 1 if p.subscriber is None else 2 for p in room.participants.values()
            }

        return self.call(count)

    def viewer_ticket(self) -> RoomTicket:
        host, ticket = self.host, self.ticket
        assert host is not None and ticket is not None

        async def credentials() -> RoomTicket:
            return host.viewer_credentials(ticket.room_name)

        return self.call(credentials)

    def mint(self, room: str, identity: str, *, ttl: float, can_publish: bool = True) -> str:
        """A token signed by this server, for any room, identity and lifetime."""
        assert self.host is not None
        return self.host.tokens.mint(room, identity, can_publish=can_publish, ttl=ttl)
