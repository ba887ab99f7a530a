"""The Quick Start of Decart's Realtime API docs, line for line, in the blocking form.

Run it (no key needed: without ``DECART_API_KEY`` it starts a local emulator in this process)::

    python examples/seed_quickstart.py --seconds 6

The function :func:`quick_start` is the docs' code with every ``await`` dropped: the SDK's calls
block until they are done. Three things the docs leave to you are stood in for locally, so the
example runs offline:

* ``get_camera_stream``: a synthetic test pattern at the model's size and frame rate (for a
  real webcam, return ``camera(0, fps=..., width=..., height=...)`` instead);
* ``character.jpg``: an image drawn here, and its URL: a small HTTP server on 127.0.0.1;
* ``handle_stream``: a thread that reads the transformed frames and counts them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import pathlib
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from decart_sync import DecartClient, SetInput, models
from decart_sync.media import VideoSource, test_pattern
from decart_sync.media.snapshot import encode_jpeg
from decart_sync.offline import client_or_emulator
from decart_sync.realtime import RealtimeClient, RealtimeConnectOptions
from decart_sync.types import ModelState, Prompt

# ----------------------------------------------------------------------------- stand-ins


class CameraStream(NamedTuple):
    video: VideoSource


def get_camera_stream(audio: bool, video: dict[str, int]) -> CameraStream:
    """Stand-in for the docs' camera helper: a test pattern of the requested size and rate.
    (``audio`` is ignored: the realtime API transforms video only.)"""
    return CameraStream(
        video=test_pattern(width=video["width"], height=video["height"], fps=video["frame_rate"])
    )


class FrameCounter:
    """``handle_stream``: reads the transformed video on a thread of its own, because the
    ``on_remote_stream`` callback must return quickly (it runs on the SDK's callback pool)."""

    def __init__(self) -> None:
        self.frames = 0
        self._thread: threading.Thread | None = None

    def handle_stream(self, transformed_stream: RealtimeClient) -> None:
        self._thread = threading.Thread(
            target=self._read, args=(transformed_stream,), name="handle-stream", daemon=True
        )
        self._thread.start()

    def _read(self, transformed_stream: RealtimeClient) -> None:
        # Ends by itself when the session disconnects.
        for _frame in transformed_stream.frames():
            self.frames += 1

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def draw_character(path: pathlib.Path) -> None:
    """A stand-in reference image: a blue figure on a warm orange ground."""
    height, width = 384, 256
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (40, 140, 235)  # BGR: orange
    figure = ((x - 128) ** 2 + (y - 110) ** 2 < 55**2) | ((abs(x - 128) < 60) & (y > 180))
    image[figure] = (200, 90, 30)  # BGR: blue
    path.write_bytes(encode_jpeg(image, quality=90))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would bury the example's output


@contextlib.contextmanager
def serve_folder(folder: pathlib.Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, name="image-server", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


# ----------------------------------------------------------------------------- the Quick Start


def quick_start(
    api_key: str, base_url: str | None, character_path: pathlib.Path, image_url: str, seconds: float
) -> FrameCounter:
    counter = FrameCounter()
    handle_stream = counter.handle_stream

    model = models.realtime("lucy-2.1")

    # Get user's camera stream
    stream = get_camera_stream(
        audio=True,
        video={
            "frame_rate": model.fps,
            "width": model.width,
            "height": model.height,
        },
    )

    # Create client
    client = DecartClient(api_key=api_key, base_url=base_url)

    with open(character_path, "rb") as f:
        character_image = f.read()

    # Connect to realtime API (blocks until connected)
    realtime_client = RealtimeClient.connect(
        base_url=client.base_url,
        api_key=client.api_key,
        local_track=stream.video,  # Pass video track
        options=RealtimeConnectOptions(
            model=model,
            on_remote_stream=lambda transformed_stream: (
                # Handle the transformed video in your app
                handle_stream(transformed_stream)
            ),
            initial_state=ModelState(
                prompt=Prompt(text="Transform into this character", enhance=True),
                image=character_image,
            ),
        ),
    )
    time.sleep(seconds / 2)  # your app runs; the transformed video flows to handle_stream
    before = counter.frames

    # Update prompt and reference image later atomically (blocks until the server applied it)
    realtime_client.set(
        SetInput(
            prompt="Add silver futuristic sunglasses",
            image=image_url,
            enhance=True,
        )
    )
    time.sleep(seconds / 2)

    # Disconnect when done (blocks until closed), then release the client
    realtime_client.disconnect()
    client.close()

    counter.join(timeout=5)
    print(f"session {realtime_client.session_id}: {counter.frames} transformed frames received")
    print(f"before set(): {before} frames; after set(): {counter.frames - before} frames")
    return counter


# ----------------------------------------------------------------------------- running it


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The docs' Quick Start, blocking.")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to stream")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        folder = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory()))
        draw_character(folder / "character.jpg")
        image_url = stack.enter_context(serve_folder(folder)) + "/character.jpg"

        # Decart's service when DECART_API_KEY is set; otherwise an emulator in this process.
        # The Quick Start takes only its key and address: it makes its own client, as the docs do.
        service = stack.enter_context(client_or_emulator())
        counter = quick_start(
            service.api_key, service.base_url, folder / "character.jpg", image_url, args.seconds
        )
    return 0 if counter.frames > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
