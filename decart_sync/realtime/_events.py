"""Session events: ``on(event, callback)`` / ``off(event, callback)``.

Callbacks run on the dispatcher's pool (never on the loop thread), one session's events in the
order they happened. An event that fires before anyone listens for it (typically the states
passed through inside ``connect()``) is kept, up to a bound, and delivered to the first callback
registered for that event, so ``session.on("connection_change", cb)`` right after ``connect()``
sees ``connecting``, ``connected``, ``generating`` in order rather than nothing.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, Literal

from decart_sync._dispatch import EventChannel
from decart_sync._redact import get_logger
from decart_sync.errors import InvalidInputError

_log = get_logger(__name__)

ConnectionState = Literal["connecting", "connected", "generating", "reconnecting", "disconnected"]
EVENTS: tuple[str, ...] = ("connection_change", "error", "generation_tick")
# Events kept per name while nobody listens; the oldest go first.
_EARLY_LIMIT = 64


class EventEmitter:
    """One session's listeners and the delivery of its events."""

    def __init__(self, channel: EventChannel, events: tuple[str, ...] = EVENTS) -> None:
        self._channel = channel
        self._events = events
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {e: [] for e in events}
        self._early: dict[str, collections.deque[Any] | None] = {
            e: collections.deque(maxlen=_EARLY_LIMIT) for e in events
        }
        self._lock = threading.Lock()

    def _check(self, event: str) -> None:
        if event not in self._events:
            raise InvalidInputError(
                f"unknown event {event!r}; this session emits: {', '.join(self._events)}"
            )

    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(payload)`` for every ``event`` from now on."""
        self._check(event)
        if not callable(callback):
            raise InvalidInputError("callback must be callable")
        with self._lock:
            self._handlers[event].append(callback)
            early = self._early[event]
            self._early[event] = None  # from now on events go to listeners, not the buffer
            if early:
                for payload in early:
                    self._channel.post(self._call, event, callback, payload)

    def off(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Stop calling ``callback`` for ``event``; unknown callbacks are ignored."""
        self._check(event)
        with self._lock:
            handlers = self._handlers[event]
            if callback in handlers:
                handlers.remove(callback)

    def emit(self, event: str, payload: Any) -> None:
        """Deliver ``payload`` to ``event``'s listeners; callable from any thread, O(1). An event
        this kind of session does not offer (a producer's, on a viewer) goes nowhere."""
        if event not in self._handlers:
            return
        with self._lock:
            early = self._early[event]
            if early is not None:
                early.append(payload)
                return
        self._channel.post(self._deliver, event, payload)

    def call(self, callback: Callable[[Any], Any], payload: Any, label: str) -> None:
        """Run a one-off user callback (``on_remote_stream``) in order with the events."""
        self._channel.post(self._call, label, callback, payload)

    def _deliver(self, event: str, payload: Any) -> None:
        with self._lock:
            handlers = list(self._handlers[event])
        for callback in handlers:
            self._call(event, callback, payload)

    @staticmethod
    def _call(event: str, callback: Callable[[Any], Any], payload: Any) -> None:
        try:
            callback(payload)
        except Exception:
            name = getattr(callback, "__qualname__", repr(callback))
            _log.exception("%s callback %s raised; continuing", event, name)
