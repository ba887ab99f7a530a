"""``DecartClient``: credentials, base URLs, and the way in to tokens and realtime sessions."""

from __future__ import annotations

import itertools
import os
import threading
from typing import TYPE_CHECKING, Any

import requests

from decart_sync import _protocol
from decart_sync._loop import LoopThread
from decart_sync._redact import SecretText, get_logger, register_secret
from decart_sync._timeouts import limit_timeout
from decart_sync.errors import InvalidAPIKeyError, InvalidInputError, SessionClosedError
from decart_sync.realtime._transports import Transport, check_transport
from decart_sync.tokens import TokensClient

if TYPE_CHECKING:
    from decart_sync.realtime._namespace import RealtimeNamespace

__all__ = ["DecartClient"]

_log = get_logger(__name__)
_client_numbers = itertools.count(1)

#: Default bound for REST calls: seconds to connect and to wait for a response.
DEFAULT_TIMEOUT = 30.0


class DecartClient:
    """Entry point of the SDK. Thread-safe; use one per application.

    ``api_key`` defaults to ``$DECART_API_KEY``; ``base_url`` (REST) to ``$DECART_BASE_URL`` or
    ``https://api.decart.ai``; ``realtime_base_url`` to ``$DECART_REALTIME_BASE_URL``, else the
    REST base's own origin when that is not Decart's (an emulator serves both on one origin),
    else ``wss://api.decart.ai``. ``integration`` is appended to the user agent. ``transport`` is
    the media transport its sessions use unless ``connect()``/``subscribe()`` name one:
    ``"auto"`` (LiveKit for Decart's service, the legacy ``webrtc`` for a server on loopback),
    ``"livekit"`` or ``"webrtc"``.

    Sessions opened through :attr:`realtime` share this client's loop thread; :meth:`close`
    disconnects them and ends the thread.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        realtime_base_url: str | None = None,
        integration: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: Transport = "auto",
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("DECART_API_KEY")
        if not isinstance(key, str) or not key.strip():
            raise InvalidAPIKeyError(
                "no API key: pass DecartClient(api_key=...) or set DECART_API_KEY "
                "(for the local emulator, use its key, e.g. emulator.api_key)"
            )
        if integration is not None and not isinstance(integration, str):
            raise InvalidInputError(f"integration must be a str, got {type(integration).__name__}")
        register_secret(key)
        self._api_key = SecretText(key.strip())
        rest_base = base_url or os.environ.get("DECART_BASE_URL")
        self._base_url = _protocol.http_base(rest_base or _protocol.DEFAULT_BASE_URL)
        self._realtime_base_url = _protocol.realtime_base_for(
            rest_base, realtime_base_url or os.environ.get("DECART_REALTIME_BASE_URL")
        )
        self.integration = integration
        self.timeout = limit_timeout(timeout, DEFAULT_TIMEOUT)
        self.transport: Transport = check_transport(transport)
        self._http = requests.Session()
        self._closed = False
        self._lock = threading.Lock()
        self._loop_thread = LoopThread(f"decart-loop-{next(_client_numbers)}")
        self.tokens = TokensClient(self, self._http)
        self._realtime: RealtimeNamespace | None = None

    # ------------------------------------------------------------------ properties

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def realtime_base_url(self) -> str:
        return self._realtime_base_url

    @property
    def user_agent(self) -> str:
        return _protocol.user_agent(self.integration)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def realtime(self) -> RealtimeNamespace:
        """Realtime sessions bound to this client: ``client.realtime.connect(...)``."""
        self._ensure_open()
        with self._lock:
            if self._realtime is None:
                from decart_sync.realtime._namespace import RealtimeNamespace

                self._realtime = RealtimeNamespace(
                    self, loop_thread=self._loop_thread, ensure_open=self._ensure_open
                )
            return self._realtime

    def _ensure_open(self) -> None:
        if self._closed:
            raise SessionClosedError("this DecartClient is closed; create a new one")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Disconnect this client's sessions, end its loop thread and HTTP pool. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            realtime = self._realtime
        if realtime is not None:
            realtime.close_all()
        self._loop_thread.stop()
        self._http.close()

    def __enter__(self) -> DecartClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"DecartClient(api_key='***', base_url={self._base_url!r}, "
            f"realtime_base_url={self._realtime_base_url!r}, {state})"
        )
