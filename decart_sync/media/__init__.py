"""Media for realtime sessions: the sources a session reads its input from, and the sinks its
transformed stream goes to (an MP4 recorder, an MJPEG broadcaster for web pages, snapshots).

Everything here is safe to use from any thread. ``connect()`` accepts any of these sources (and
the raw objects :func:`as_source` knows: aiortc tracks, numpy frame iterables, ``read()``
captures, file paths).
"""

from decart_sync.media.mjpeg import MjpegBroadcaster
from decart_sync.media.recorder import Recorder, RecordingResult, SessionRecorder, record
from decart_sync.media.snapshot import JpegEncoder, encode_jpeg, encode_png, save_frame
from decart_sync.media.sources import (
    CaptureSource,
    IterableSource,
    Pacing,
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
    "JpegEncoder",
    "MjpegBroadcaster",
    "Pacing",
    "PushSource",
    "Recorder",
    "RecordingResult",
    "SessionRecorder",
    "TrackSource",
    "VideoSource",
    "as_source",
    "camera",
    "encode_jpeg",
    "encode_png",
    "record",
    "render_test_pattern",
    "save_frame",
    "test_pattern",
    "video_file",
]
