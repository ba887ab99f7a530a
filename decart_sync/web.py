"""One realtime session shared by every request of a web app: opened on first use, per process.

A web page that shows a live session needs the same few things whatever the framework: one
session (each one is billed) that every request shares, an MJPEG stream of it that every viewer
shares, a fresh session when the old one has ended, and nothing started before the server forks
its workers. :class:`SharedSession` is that holder. Flask::

    from decart_sync.media import camera
    from decart_sync.web import SharedSession

    live = SharedSession("lucy-2.1", lambda: camera(0), prompt="anime")

    @app.get("/video.mjpg")
    def video():
        broadcaster = live.broadcaster()
        return Response(broadcaster.viewer(), content_type=broadcaster.content_type)

Django is the same, with ``StreamingHttpResponse`` (``broadcaster.async_viewer()`` under ASGI).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import attrs

from decart_sync._timeouts import limit_timeout
from decart_sync.client import DecartClient
from decart_sync.errors import InvalidInputError
from decart_sync.media.mjpeg import MjpegBroadcaster
from decart_sync.media.sources import VideoSource
from decart_sync.models import ModelDefinition
from decart_sync.realtime._retry import ReconnectPolicy
from decart_sync.realtime._session import RealtimeClient
from decart_sync.realtime._transports import Transport, check_transport
from decart_sync.types import ImageInput

__all__ = ["SharedSession"]

#: Browsers show MJPEG smoothly at 15 fps; encoding every frame the model sends (30 fps) would
#: double the CPU spent on JPEG for no visible gain.
DEFAULT_MJPEG_FPS = 15.0


@attrs.frozen
class _Live:
    """An open session, its MJPEG broadcaster, and the input made for it."""

    session: RealtimeClient
    broadcaster: MjpegBroadcaster
    source: Any

    def close(self) -> None:
        self.broadcaster.close()  # ends every viewer's stream
        self.session.disconnect()
        _close_source(self.source)


def _close_source(source: Any) -> None:
    # A session closes the inputs it wrapped itself, but not a VideoSource it was handed
    # (camera(0), test_pattern()); ours are made for one session alone, so we close them.
    if isinstance(source, VideoSource):
        source.close()


class _ProcessState:
    """What one process has opened. A forked child never uses its parent's (see ``_here``)."""

    def __init__(self) -> None:
        # Held while opening, so that concurrent first requests wait for one session rather
        # than each opening their own.
        self.lock = threading.Lock()
        # Orders set_prompt/set_image, so that what is remembered is what was applied last.
        self.control_lock = threading.Lock()
        self.client: DecartClient | None = None
        # One attribute, so that readers without the lock never see a mixed set.
        self.live: _Live | None = None


class SharedSession:
    """A realtime session opened on first use and shared by every thread of this process.

    ``model`` and ``source_factory`` say what to open: the factory makes the session's input
    (``lambda: camera(0)``, ``test_pattern``; ``lambda: None`` for a push source), once for each
    session, and what it makes is closed with that session. ``client_factory`` makes the
    :class:`DecartClient` (default: from ``DECART_API_KEY``); the client it returns belongs to
    this object, which closes it. ``prompt`` and ``image`` are the initial state;
    ``mjpeg_fps`` caps the frames a second :meth:`broadcaster` encodes (None: every frame);
    ``reconnect``, ``connect_timeout`` and ``transport`` are passed to ``connect()``.

    * :meth:`session` and :meth:`broadcaster` open the session if there is none, and replace one
      that has ended for good (reconnects exhausted, credits out, the server ended it). Viewers
      of an ended session's stream see their stream end; a page reload attaches them anew.
    * :meth:`set_prompt` and :meth:`set_image` apply a change and remember it, so a replacement
      session starts where the last one was.
    * :meth:`current` and :meth:`status` describe without opening: an app nobody visits holds no
      session, so on the real service it spends no credits.
    * :meth:`close` ends everything; the next use starts afresh.

    Nothing is opened in ``__init__``, so the object can be made at import time. Under gunicorn:

    * ``-k gthread``, with ``--threads`` sized for your viewers: the default sync worker ends
      every request after its 30 s ``--timeout``, video streams included.
    * No ``--preload``: threads do not survive ``fork()``, so nothing may be opened before the
      workers are forked. Each worker opens its own session on first use. Should a session
      have been opened before a fork all the same, the child leaves what it inherited alone
      (its threads exist only in the parent) and opens its own.
    * ``-w 1``: each worker's session is billed; one worker with many threads shares a single
      session with every viewer. To open it before the first visitor, call :meth:`session`
      from the ``post_fork`` hook, which runs in the worker.
    """

    def __init__(
        self,
        model: str | ModelDefinition,
        source_factory: Callable[[], Any],
        *,
        client_factory: Callable[[], DecartClient] = DecartClient,
        prompt: str | None = None,
        image: ImageInput | None = None,
        mjpeg_fps: float | None = DEFAULT_MJPEG_FPS,
        reconnect: ReconnectPolicy | None = None,
        connect_timeout: float = 30.0,
        transport: Transport = "auto",
    ) -> None:
        # Checked now rather than on first use, where it would fail after connecting.
        if mjpeg_fps is not None and (isinstance(mjpeg_fps, bool) or not mjpeg_fps > 0):
            raise InvalidInputError(
                f"mjpeg_fps must be a positive number or None, got {mjpeg_fps!r}"
            )
        self._model = model
        self._source_factory = source_factory
        self._client_factory = client_factory
        self._initial = (prompt, image)
        self._prompt, self._image = prompt, image
        self._mjpeg_fps = mjpeg_fps
        self._reconnect = reconnect
        self._connect_timeout = limit_timeout(connect_timeout, 30.0, "connect_timeout")
        self._transport = check_transport(transport)
        self._by_pid: dict[int, _ProcessState] = {}

    def __repr__(self) -> str:
        live = self._here().live
        described = "idle" if live is None else repr(live.session)
        return f"<SharedSession {described} prompt={self._prompt!r}>"

    @property
    def prompt(self) -> str | None:
        """The prompt last applied through this object (or the initial one)."""
        return self._prompt

    def _here(self) -> _ProcessState:
        """This process's state. A forked child finds no entry for its pid and makes its own:
        what it inherited belongs to threads that do not exist in it, so it must not be used,
        closed, or even dropped (a finaliser could touch it); it is kept and ignored."""
        pid = os.getpid()
        state = self._by_pid.get(pid)
        if state is None:
            state = self._by_pid.setdefault(pid, _ProcessState())  # atomic: one winner
        return state

    # ------------------------------------------------------------------ opening

    def client(self) -> DecartClient:
        """This process's client, made on first use (for ``client.tokens`` and the like)."""
        state = self._here()
        with state.lock:
            return self._client_locked(state)

    def _client_locked(self, state: _ProcessState) -> DecartClient:
        if state.client is None:
            state.client = self._client_factory()
        return state.client

    def _open(self) -> _Live:
        state = self._here()
        with state.lock:
            live = state.live
            if live is not None and live.session.get_connection_state() == "disconnected":
                live.close()  # it ended for good: start a fresh one
                state.live = live = None
            if live is None:
                source = self._source_factory()
                try:
                    session = self._client_locked(state).realtime.connect(
                        self._model,
                        source,
                        prompt=self._prompt,
                        image=self._image,
                        reconnect=self._reconnect,
                        transport=self._transport,
                        timeout=self._connect_timeout,
                    )
                except BaseException:
                    _close_source(source)  # a camera must not stay open for a failed session
                    raise
                broadcaster = MjpegBroadcaster(session, max_fps=self._mjpeg_fps)
                state.live = live = _Live(session, broadcaster, source)
            return live

    def session(self) -> RealtimeClient:
        """The live session, opening (or replacing an ended) one first."""
        return self._open().session

    def broadcaster(self) -> MjpegBroadcaster:
        """The live session's MJPEG broadcaster (made with it), opening the session first."""
        return self._open().broadcaster

    # ------------------------------------------------------------------ control

    def set_prompt(self, prompt: str) -> None:
        """Change the prompt (opening the session first); blocks until the server applied it,
        then remembers it for replacement sessions."""
        with self._here().control_lock:
            self.session().set_prompt(prompt)
            self._prompt = prompt

    def set_image(self, image: ImageInput) -> None:
        """Change the reference image, keeping the prompt; like :meth:`set_prompt`."""
        with self._here().control_lock:
            self.session().set_image(image)
            self._image = image

    # ------------------------------------------------------------------ describing

    def current(self) -> RealtimeClient | None:
        """The session if this process has one (perhaps ended), without opening one."""
        live = self._here().live
        return None if live is None else live.session

    def status(self) -> dict[str, Any]:
        """A JSON-ready description for a status endpoint, without opening a session:
        ``state``, ``session_id`` and ``prompt``; with a session, also ``viewers`` (of the MJPEG
        stream) and ``stats`` (:class:`~decart_sync.realtime.SessionStats` as a dict)."""
        live = self._here().live
        if live is None:
            return {"state": "disconnected", "session_id": None, "prompt": self._prompt}
        return {
            "state": live.session.get_connection_state(),
            "session_id": live.session.session_id,
            "prompt": self._prompt,
            "viewers": live.broadcaster.viewers,
            "stats": attrs.asdict(live.session.stats()),
        }

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Disconnect, end the viewers' streams, close the client, and forget the prompt and
        image set since; the next use starts afresh. Only this process's objects are touched."""
        state = self._here()
        with state.lock:
            if state.live is not None:
                state.live.close()
                state.live = None
            if state.client is not None:
                state.client.close()
                state.client = None
            self._prompt, self._image = self._initial
