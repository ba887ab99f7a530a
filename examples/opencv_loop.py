"""An OpenCV-style loop over the transformed stream: ``for frame in session.frames():``.

Run it (no key needed: without ``DECART_API_KEY`` it starts a local emulator in this process)::

    python examples/opencv_loop.py --seconds 10

Each frame is a numpy ``HxWx3`` uint8 array in BGR order, exactly what OpenCV expects. With
OpenCV installed (``pip install opencv-python``) and a display, the frames are shown in a window
(press ``q`` to quit). Without a display, or without OpenCV, one frame a second is written as a
JPEG instead, to ``--out`` or, by default, a new temporary folder the example names when it ends.
OpenCV is optional: neither this example nor the SDK needs it.

``--input`` picks what is transformed: ``pattern`` (a synthetic test pattern, the default),
``camera:0`` (a webcam), or the path of a video file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from decart_sync.media import camera, test_pattern, video_file
from decart_sync.media.snapshot import save_frame
from decart_sync.offline import client_or_emulator


def open_input(spec: str) -> Any:
    """``pattern``, ``camera:N`` or a video file path, as a session source."""
    if spec == "pattern":
        return test_pattern()
    if spec.startswith("camera:"):
        return camera(int(spec.removeprefix("camera:")))
    return video_file(spec, loop=True)


def load_opencv() -> ModuleType | None:
    """OpenCV if it is installed. Imported lazily so that the example runs without it."""
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None


def has_display() -> bool:
    # On Linux a window needs an X11 or Wayland session; macOS and Windows desktops always have one.
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loop over a session's frames with OpenCV.")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run")
    parser.add_argument("--prompt", default="cartoon")
    parser.add_argument("--input", default="pattern", help="pattern, camera:N or a video file")
    parser.add_argument(
        "--out", help="folder for frames when there is no display (default: a new temporary one)"
    )
    parser.add_argument(
        "--no-window", action="store_true", help="write frames even if a display exists"
    )
    args = parser.parse_args(argv)

    cv2 = load_opencv()
    show = cv2 is not None and has_display() and not args.no_window
    out = pathlib.Path(args.out) if args.out else None
    if not show:
        # Never the current folder by default: run from a checkout, the frames would land in it.
        out = out or pathlib.Path(tempfile.mkdtemp(prefix="decart-opencv-"))
        out.mkdir(parents=True, exist_ok=True)

    frames_seen = written = 0
    next_write = 0.0
    # Decart's service when DECART_API_KEY is set; otherwise an emulator in this process.
    with (
        client_or_emulator() as client,
        client.realtime.connect(
            "lucy-2.1", open_input(args.input), prompt=args.prompt, timeout=30
        ) as session,
    ):
        started = time.monotonic()
        deadline = started + args.seconds
        # `with` releases the reader as soon as the loop is left, even by break or an exception.
        with session.frames() as frames:
            for frame in frames:
                frames_seen += 1
                now = time.monotonic()
                if show:
                    assert cv2 is not None
                    cv2.imshow("decart-sync", frame)
                    # waitKey lets the window repaint; without it nothing is drawn.
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
                elif out is not None and now >= next_write:
                    written += 1
                    save_frame(frame, out / f"frame_{written:04d}.jpg")
                    next_write = now + 1.0
                if now >= deadline:
                    break
        elapsed = time.monotonic() - started
        session_id = session.session_id
    if show:
        assert cv2 is not None
        cv2.destroyAllWindows()

    where = "shown in a window" if show else f"{written} written to {out}/"
    print(f"session {session_id}: prompt {args.prompt!r}")
    print(f"frames: {frames_seen} in {elapsed:.1f} s ({frames_seen / elapsed:.1f} fps), {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
