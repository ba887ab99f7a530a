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
  ``fork()``. That is why the session (a ``decart_sync.web.SharedSession``) is opened on first
  use, in the worker that serves the request, never at import time. To have it ready before the
  first visitor, call its ``session()`` from gunicorn's ``post_fork`` hook, which runs in the
  worker.
* ``-w 1``: each worker process opens a session of its own, and each one is billed. One worker
  with many threads shares a single session with every viewer.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from werkzeug.serving import make_server

from decart_sync import DecartClient, DecartSDKError, InvalidInputError
from decart_sync.media import test_pattern
from decart_sync.offline import client_or_emulator
from decart_sync.web import SharedSession

MODEL = "lucy-2.1"
DEFAULT_PROMPT = "noir"

log = logging.getLogger("flask_app")


def create_app(
    client: DecartClient | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    source: Callable[[], Any] = test_pattern,
) -> Flask:
    """Build the app. ``client``: a DecartClient to use (default: Decart's service when
    ``DECART_API_KEY`` is set, else an emulator in this process; made on first use).
    ``source``: makes the session's input; use ``lambda: camera(0)`` for a webcam
    (``from decart_sync.media import camera``)."""
    # The page is templates/live_page.html next to this file, shared with the Django example.
    app = Flask(__name__)
    # The one session every request shares, opened by the first request that needs it.
    live = SharedSession(
        MODEL,
        source,
        client_factory=(lambda: client) if client is not None else client_or_emulator,
        prompt=prompt,
    )
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
        urls = {name: url_for(name) for name in ("video", "set_prompt", "set_image", "status")}
        return render_template("live_page.html", framework="Flask", urls=urls, prompt=live.prompt)

    @app.get("/video.mjpg")
    def video() -> Response:
        broadcaster = live.broadcaster()
        # The server closes the iterator when the visitor leaves, which detaches the viewer.
        return Response(broadcaster.viewer(), content_type=broadcaster.content_type)

    @app.post("/prompt")
    def set_prompt() -> Any:
        text = request.form.get("prompt", "").strip()
        if not text:
            return jsonify({"error": "the prompt is empty"}), 400
        live.set_prompt(text)  # blocks until the server has applied it
        # Post/redirect/get: reloading the page does not post the form again.
        return redirect(url_for("index"), code=303)

    @app.post("/image")
    def set_image() -> Any:
        upload = request.files.get("image")
        data = upload.read() if upload is not None else b""
        if not data:
            return jsonify({"error": "no image uploaded"}), 400
        live.set_image(data)  # keeps the prompt; raises InvalidInputError for a bad image
        return redirect(url_for("index"), code=303)

    @app.get("/api/status")
    def status() -> Response:
        # Describes the session without opening one: nobody watching means no session.
        return jsonify(live.status())

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
    # aiortc's ICE library narrates every connectivity check at INFO (eight lines a session);
    # its warnings still show.
    logging.getLogger("aioice").setLevel(logging.WARNING)

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

    live: SharedSession = app.extensions["live_stream"]
    status = live.status()
    elapsed = time.monotonic() - started
    if status["session_id"] is None:
        print(f"Stopped after {elapsed:.1f} s; nobody watched, so no session was opened.")
    else:
        print(
            f"Stopped after {elapsed:.1f} s: session {status['session_id']} received "
            f"{status['stats']['frames_received']} frames."
        )
    live.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
