"""Media for realtime sessions: the sources a session reads its input from.

Everything here is safe to use from any thread. ``connect()`` accepts any of these sources (and
the raw objects :func:`as_source` knows: aiortc tracks, numpy frame iterables, ``read()``
captures, file paths).
"""

from decart_sync.media.sources import (
    CaptureSource,
    IterableSource,
    PushSource,
    TrackSource,
    VideoSource,
    as_source,
    camera,
    test_pattern,
    video_file,
)
from decart_sync.media.test_pattern import render_test_pattern

__all__ = [
    "CaptureSource",
    "IterableSource",
    "PushSource",
    "TrackSource",
    "VideoSource",
    "as_source",
    "camera",
    "render_test_pattern",
    "test_pattern",
    "video_file",
]
