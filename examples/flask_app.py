"""A Flask page with a live, transformed video stream, driven from plain request handlers.

Run it (no key needed: without ``DECART_API_KEY`` it starts a local emulator in this process)::

    python examples/flask_app.py            # then open http://127.0.0.1:5000/

With ``DECART_API_KEY`` set it uses Decart's service instead. The routes:

* ``GET /``: the page, with the stream in a plain ``<img>``, a prompt form and an image upload.
* ``GET /video.mjpg``: the stream as MJPEG; each frame is encoded once for every viewer.
* ``POST /prompt``, ``POST /image``: call the blocking SDK (``set_prompt``, ``set_image``) right in
  the handler; they return once the server has applied the change.
* ``GET /api/status``: JSON with the state, session id, prompt and stats.
* ``POST /api/realtime-token``: the seed's token endpoint, the sync way: a short-lived client key
  a browser or mobile app may hold instead of your API key.

In production, under gunicorn::

    gunicorn -k gthread --threads 16 -w 1 --chdir examples 'flask_app:create_app()'

* ``-k gthread``: gunicorn's default sync worker ends any request that runs longer than its
  ``--timeout`` (30 s), which cuts every video stream after 30 s. A gthread worker serves each
  request on a thread of its own; every open stream holds one, so size ``--threads`` for your
  viewers plus the other requests.
* No ``--preload``: the SDK runs its network loop on a thread, and threads do not survive
  ``fork()``. That is why the session is opened on first use, in the worker that serves the
  request, never at import time (gunicorn imports the app, then forks its workers when
  ``--preload`` is on). To have it ready before the first visitor, open it from gunicorn's
  ``post_fork`` hook, which runs in the worker.
* ``-w 1``: each worker process opens a session of its own, and each one is billed. One worker
  with many threads shares a single session with every viewer.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from flask import Flask, Response, jsonify, redirect, render_template_string, request, url_for
from werkzeug.serving import make_server

from decart_sync import DecartClient, DecartSDKError, InvalidInputError
from decart_sync.media import test_pattern
from decart_sync.media.mjpeg import MjpegBroadcaster
from decart_sync.realtime import RealtimeClient

MODEL = "lucy-2.1"
DEFAULT_PROMPT = "noir"
# Browsers show MJPEG smoothly at 15 fps; encoding every frame the model sends (30 fps) would
# double the CPU spent on JPEG for no visible gain.
MJPEG_FPS = 15.0

log = logging.getLogger("flask_app")


def client_from_environment() -> DecartClient:
    """Decart's service when ``DECART_API_KEY`` is set; otherwise an emulator in this process."""
    if os.environ.get("DECART_API_KEY"):
        return DecartClient()
    # Imported here: the emulator is an optional extra, not needed against the real service.
    from decart_sync.emulator import Emulator

    emulator = Emulator().start()  # stops by itself when the process exits
    return DecartClient(
        api_key=emulator.api_key, base_url=emulator.url, realtime_base_url=emulator.realtime_url
    )


class LiveStream:
    """The app's one realtime session, opened on first use and shared by every request.

    Opening it lazily is what makes the app safe to fork (see the module docstring), and it also
    means an app nobody visits holds no session, which on the real service costs credits.
    """

    def __init__(
        self,
        make_client: Callable[[], DecartClient],
        make_source: Callable[[], Any],
        prompt: str,
    ) -> None:
        self._make_client = make_client
        self._make_source = make_source
        self._lock = threading.Lock()
        self._client: DecartClient | None = None
        self._session: RealtimeClient | None = None
        self._broadcaster: MjpegBroadcaster | None = None
        # What the visitors asked for last, so a replacement session starts where the old one was.
        self.prompt = prompt
        self.image: bytes | None = None

    def client(self) -> DecartClient:
        with self._lock:
            return self._client_locked()

    def _client_locked(self) -> DecartClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def session(self) -> tuple[RealtimeClient, MjpegBroadcaster]:
        """The live session and its MJPEG broadcaster, connecting first if there is none."""
        # Holding the lock while connecting makes concurrent first requests wait for the one
        # session instead of each opening their own.
        with self._lock:
            if self._session is not None and self._session.get_connection_state() == "disconnected":
                # It ended for good (retries exhausted, credits out): start a fresh one.
                self._close_session_locked()
            if self._session is None or self._broadcaster is None:
                session = self._client_locked().realtime.connect(
                    MODEL, self._make_source(), prompt=self.prompt, image=self.image, timeout=30
                )
                self._session = session
                self._broadcaster = MjpegBroadcaster(session, max_fps=MJPEG_FPS)
            return self._session, self._broadcaster

    def current(self) -> RealtimeClient | None:
        """The session if one is open, without opening one (for status checks)."""
        return self._session

    def broadcaster(self) -> MjpegBroadcaster | None:
        return self._broadcaster

    def _close_session_locked(self) -> None:
        if self._broadcaster is not None:
            self._broadcaster.close()  # ends every viewer's stream
        if self._session is not None:
            self._session.disconnect()
        self._session = self._broadcaster = None

    def close(self) -> None:
        with self._lock:
            self._close_session_locked()
            if self._client is not None:
                self._client.close()
                self._client = None


PAGE = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>decart-sync: Flask</title>
  <style>
    body { font-family: sans-serif; margin: 2em; }
    img { max-width: 100%; background: #222; }
  </style>
</head>
<body>
  <h1>Live stream</h1>
  <img id="live" src="{{ url_for('video') }}" width="1088" height="624" alt="live stream">
  <form id="prompt-form" method="post" action="{{ url_for('set_prompt') }}">
    <input name="prompt" value="{{ prompt }}" size="40" aria-label="prompt">
    <button type="submit">Set prompt</button>
  </form>
  <form method="post" action="{{ url_for('set_image') }}" enctype="multipart/form-data">
    <input type="file" name="image" accept="image/*" aria-label="reference image">
    <button type="submit">Set reference image</button>
  </form>
  <pre id="status"></pre>
  <script>
    // The status endpoint is plain JSON; show it, refreshed every two seconds.
    async function refresh() {
      const response = await fetch("{{ url_for('status') }}");
      document.getElementById("status").textContent =
        JSON.stringify(await response.json(), null, 2);
    }
    refresh();
    setInterval(refresh, 2000);
  </script>
</body>
</html>
"""


def create_app(
    client: DecartClient | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    source: Callable[[], Any] = test_pattern,
) -> Flask:
    """Build the app. ``client``: a DecartClient to use (default: from the environment, opened
    on first use). ``source``: makes the session's input; use ``lambda: camera(0)`` for a
    webcam (``from decart_sync.media import camera``)."""
    app = Flask(__name__)
    make_client = (lambda: client) if client is not None else client_from_environment
    live = LiveStream(make_client, source, prompt)
    # Tests and your own extensions find the stream here.
    app.extensions["live_stream"] = live

    @app.errorhandler(DecartSDKError)
    def sdk_error(error: DecartSDKError) -> tuple[Response, int]:
        # Bad input is the visitor's mistake; anything else is the service's or the network's.
        status = 400 if isinstance(error, InvalidInputError) else 502
        log.warning("request failed: %s", error.message)
        return jsonify({"error": error.message}), status

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE, prompt=live.prompt)

    @app.get("/video.mjpg")
    def video() -> Response:
        _, broadcaster = live.session()
        # The server closes the iterator when the visitor leaves, which detaches the viewer.
        return Response(broadcaster.viewer(), content_type=broadcaster.content_type)

    @app.post("/prompt")
    def set_prompt() -> Any:
        text = request.form.get("prompt", "").strip()
        if not text:
            return jsonify({"error": "the prompt is empty"}), 400
        session, _ = live.session()
        session.set_prompt(text)  # blocks until the server has applied it
        live.prompt = text
        # Post/redirect/get: reloading the page does not post the form again.
        return redirect(url_for("index"), code=303)

    @app.post("/image")
    def set_image() -> Any:
        upload = request.files.get("image")
        data = upload.read() if upload is not None else b""
        if not data:
            return jsonify({"error": "no image uploaded"}), 400
        session, _ = live.session()
        session.set_image(data)  # keeps the prompt; raises InvalidInputError for a bad image
        live.image = data
        return redirect(url_for("index"), code=303)

    @app.get("/api/status")
    def status() -> Response:
        session = live.current()
        if session is None:
            # Nobody has watched yet: report that rather than open a session just to describe it.
            return jsonify({"state": "disconnected", "session_id": None, "prompt": live.prompt})
        broadcaster = live.broadcaster()
        return jsonify(
            {
                "state": session.get_connection_state(),
                "session_id": session.session_id,
                "prompt": live.prompt,
                "viewers": broadcaster.viewers if broadcaster is not None else 0,
                "stats": attrs.asdict(session.stats()),
            }
        )

    @app.post("/api/realtime-token")
    def create_realtime_token() -> Any:
        """A client token for client-side realtime connections (add your own auth first)."""
        try:
            token = live.client().tokens.create(expires_in=300, allowed_models=[MODEL])
        except DecartSDKError as error:
            log.warning("token creation failed: %s", error.message)
            return jsonify({"error": "Failed to create client token"}), 500
        return jsonify({"apiKey": token.api_key, "expiresAt": token.expires_at})

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    app = create_app(prompt=args.prompt)
    # Werkzeug's threaded server (what `flask run` uses), started by hand so that --seconds
    # can stop it; every request, including each open video stream, gets its own thread.
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"Serving on http://{args.host}:{server.port}/ (Ctrl-C to stop)", flush=True)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    started = time.monotonic()
    thread.start()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop serving, then summarise
        thread.join(args.seconds)
    server.shutdown()

    live: LiveStream = app.extensions["live_stream"]
    session, broadcaster = live.current(), live.broadcaster()
    elapsed = time.monotonic() - started
    if session is None or broadcaster is None:
        print(f"Stopped after {elapsed:.1f} s; nobody watched, so no session was opened.")
    else:
        stats = session.stats()
        print(
            f"Stopped after {elapsed:.1f} s: session {session.session_id} received "
            f"{stats.frames_received} frames; {broadcaster.frames_encoded} JPEGs encoded."
        )
    live.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
