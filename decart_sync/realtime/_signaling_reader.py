"""One thread that reads every open signaling WebSocket in the process.

websocket-client reads by blocking, and a thread per connection would add a thread per session.
Instead, one named thread (``decart-signaling``) waits on all the sockets at once with
``selectors`` and reads a socket only when it has data, then goes back to waiting. It starts with
the first connection and ends with the last, so an idle program has no such thread.

Reading a socket that is readable can still wait for the rest of a frame that is on its way;
the socket's read timeout bounds that, and a connection that stalls mid-frame is reported lost.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import ssl
import threading
from collections.abc import Callable

import websocket

from decart_sync._redact import get_logger

_log = get_logger(__name__)

THREAD_NAME = "decart-signaling"
#: Longest wait for the rest of a frame once its first bytes arrived.
STALL_TIMEOUT = 10.0

#: Called on the reader thread with each text message; returns False to stop reading.
TextHandler = Callable[[str], bool]
#: Called once on the reader thread when the connection ends (with the failure, if any).
EndHandler = Callable[["BaseException | None"], None]


class _Registration:
    def __init__(self, ws: websocket.WebSocket, on_text: TextHandler, on_end: EndHandler) -> None:
        self.ws = ws
        # Kept: once the socket is shut, it no longer knows its own descriptor.
        self.fd: int = ws.sock.fileno() if ws.sock is not None else -1
        self.on_text = on_text
        self.on_end = on_end


class SignalingReader:
    """Reads registered WebSockets on one shared thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._registrations: dict[int, _Registration] = {}  # by id() of the WebSocket

    def add(self, ws: websocket.WebSocket, on_text: TextHandler, on_end: EndHandler) -> None:
        """Start reading ``ws``; its handlers run on the reader thread."""
        ws.settimeout(STALL_TIMEOUT)
        registration = _Registration(ws, on_text, on_end)
        with self._lock:
            if self._thread is None:
                self._start()
            assert self._selector is not None
            self._selector.register(registration.fd, selectors.EVENT_READ, registration)
            self._registrations[id(ws)] = registration
        self._wake()

    def remove(self, ws: websocket.WebSocket) -> bool:
        """Stop reading ``ws`` (its end handler is not called). False if it was not registered."""
        with self._lock:
            registration = self._registrations.get(id(ws))
            if registration is None or not self._forget_locked(registration):
                return False
        self._wake()
        return True

    def _forget_locked(self, registration: _Registration) -> bool:
        if self._registrations.get(id(registration.ws)) is not registration:
            return False  # already forgotten
        del self._registrations[id(registration.ws)]
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(registration.fd)
        return True

    def _start(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # the reader is already winding down
                wake.send(b"\0")

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:
            # Only a bug gets here. Every session this thread read for would otherwise wait on a
            # reader that is gone: each is told its connection ended (so it reconnects), and
            # the next add() starts a new thread.
            _log.exception("the signaling reader failed; its connections are reported lost")
            with self._lock:
                orphans = list(self._registrations.values())
                self._registrations.clear()
                self._shutdown_locked()
            for registration in orphans:
                _report_end(registration, exc)

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        while True:
            with self._lock:
                if not self._registrations:
                    # The last connection left: end the thread; the next add() starts another.
                    self._shutdown_locked()
                    return
            for key, _ in selector.select():
                if key.data is None:
                    with contextlib.suppress(OSError):
                        key.fileobj.recv(4096)  # type: ignore[union-attr]
                    continue
                registration: _Registration = key.data
                if not self._read(registration):
                    with self._lock:
                        self._forget_locked(registration)

    def _shutdown_locked(self) -> None:
        if self._selector is not None:
            self._selector.close()
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()
        self._selector = self._wake_r = self._wake_w = None
        self._thread = None

    @staticmethod
    def _read(registration: _Registration) -> bool:
        """Read what the socket has; False once the connection is over."""
        ws = registration.ws
        try:
            while True:
                # control_frame=True returns after a ping or pong too, so a ping never leaves
                # this thread waiting for a data frame that may not come.
                opcode, frame = ws.recv_data_frame(True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    _report_end(registration, None)
                    return False
                if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    data = frame.data
                    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
                    if not registration.on_text(text):
                        return False
                # TLS can hold decrypted bytes the socket no longer signals as readable.
                sock = ws.sock
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    return True
        except Exception as exc:
            # Whatever one connection's bytes or handlers raise ends that connection alone;
            # the thread goes on reading the others.
            _report_end(registration, exc)
            return False


def _report_end(registration: _Registration, failure: BaseException | None) -> None:
    try:
        registration.on_end(failure)
    except Exception:
        _log.exception("a signaling end handler failed")


_reader = SignalingReader()


def _forget_after_fork() -> None:
    # A forked child inherits the parent's reader state but not its thread, nor any right to
    # read the parent's sockets: it starts over with a reader of its own.
    global _reader
    _reader = SignalingReader()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def shared_reader() -> SignalingReader:
    """The process's signaling reader."""
    return _reader
