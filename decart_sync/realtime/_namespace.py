"""``client.realtime``: sessions bound to a :class:`DecartClient` (its key, URLs, loop thread)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from decart_sync import models as _models
from decart_sync._loop import LoopThread
from decart_sync._protocol import user_agent
from decart_sync.errors import InvalidInputError
from decart_sync.models import ModelDefinition
from decart_sync.realtime._options import RealtimeConnectOptions, SubscribeOptions
from decart_sync.realtime._retry import ReconnectPolicy
from decart_sync.realtime._session import (
    RealtimeClient,
    SubscribeClient,
    _connect_producer,
    _connect_viewer,
)
from decart_sync.realtime._transports import Transport
from decart_sync.types import ImageInput, ModelState, Prompt

if TYPE_CHECKING:
    from decart_sync.client import DecartClient


class RealtimeNamespace:
    """Opens sessions with the client's credentials; :meth:`DecartClient.close` ends them."""

    def __init__(
        self, client: DecartClient, *, loop_thread: LoopThread, ensure_open: Callable[[], None]
    ) -> None:
        self._client = client
        # What the client shares with its sessions beyond its public settings.
        self._loop_thread = loop_thread
        self._ensure_open = ensure_open
        self._sessions: weakref.WeakSet[RealtimeClient | SubscribeClient] = weakref.WeakSet()
        self._lock = threading.Lock()

    def connect(
        self,
        model: str | ModelDefinition,
        source: Any = None,
        *,
        prompt: str | None = None,
        image: ImageInput | None = None,
        enhance: bool = True,
        initial_state: ModelState | None = None,
        on_remote_stream: Callable[[Any], None] | None = None,
        ice_servers: Sequence[Any] | None = None,
        resolution: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        video_codec: str | None = None,
        transport: Transport | None = None,
        speed: str | None = None,
        timeout: float | None = None,
    ) -> RealtimeClient:
        """Open a producer session and return once it is connected.

        ``model`` is a name (``"lucy-2.1"``) or a definition. ``source`` is anything
        ``decart_sync.media.as_source`` accepts; without one the session gets a
        :class:`~decart_sync.media.PushSource` and you feed it with ``session.send(frame)``.
        The initial state is ``initial_state``, or ``prompt``/``image``/``enhance`` for short.
        ``transport``: ``"auto"`` (LiveKit for Decart's service, the legacy ``webrtc`` for an
        emulator on loopback), ``"livekit"`` or ``"webrtc"``; None: the client's
        ``transport``. ``speed="fast"`` where the model offers it.
        """

        definition = _models.realtime(model) if isinstance(model, str) else model
        if initial_state is not None and (prompt is not None or image is not None):
            raise InvalidInputError("pass either initial_state or prompt/image, not both")
        if initial_state is None:
            initial_state = ModelState(
                prompt=None if prompt is None else Prompt(prompt, enhance), image=image
            )
        options = RealtimeConnectOptions(
            model=definition,
            on_remote_stream=on_remote_stream,
            initial_state=initial_state,
            ice_servers=ice_servers,
            resolution=resolution,
            reconnect=reconnect or ReconnectPolicy(),
            video_codec=video_codec,
            transport=transport or self._client.transport,
            speed=speed,
        )
        client = self._client
        self._ensure_open()
        session = _connect_producer(
            loop_thread=self._loop_thread,
            realtime_base=client.realtime_base_url,
            api_key=client.api_key,
            source=source,
            options=options,
            timeout=timeout,
            agent=user_agent(client.integration),
        )
        self._track(session)
        return session

    def subscribe(
        self,
        token: str,
        *,
        on_remote_stream: Callable[[Any], None] | None = None,
        ice_servers: Sequence[Any] | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
    ) -> SubscribeClient:
        """Watch the session whose producer shared ``token`` (its ``subscribe_token``)."""
        client = self._client
        self._ensure_open()
        session = _connect_viewer(
            loop_thread=self._loop_thread,
            realtime_base=client.realtime_base_url,
            api_key=client.api_key,
            options=SubscribeOptions(
                token=token,
                on_remote_stream=on_remote_stream,
                ice_servers=ice_servers,
                transport=transport or client.transport,
            ),
            timeout=timeout,
            agent=user_agent(client.integration),
        )
        self._track(session)
        return session

    def _track(self, session: RealtimeClient | SubscribeClient) -> None:
        with self._lock:
            self._sessions.add(session)

    def close_all(self) -> None:
        """Disconnect every session opened here (the client is closing)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.disconnect()
