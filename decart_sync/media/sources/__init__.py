"""Video sources: what a user hands a session as its input, and how each one is read.

A :class:`VideoSource` lives in the blocking world (files, cameras, generators, a user's thread
pushing frames) and lends the session one aiortc track at a time through :meth:`open_track`.
Blocking reads run in the executor the session passes in, one at a time per source, never on the
loop thread; sources start no threads of their own. A source outlives a connection: after a
reconnect the new track carries on where the last one stopped.

Two families, by who sets the pace:

* pull sources (files, generators, ``read()`` captures, the test pattern, cameras) are read once
  per frame sent: a file or a generator is read ahead and waits for the model's rate, a camera
  or the pattern is read when its frame is due, and a live input's frame goes out as soon as the
  read returns it;
* latest-wins sources (:class:`PushSource`, a user's aiortc track) are filled by someone else at
  their own rate; a new frame goes out as soon as it arrives (at most at the model's rate), and
  the last one is repeated if nothing new comes for two frame intervals.

:func:`as_source` turns anything ``connect()`` accepts into a source. Each source says how its
track paces it (:class:`Pacing`) and serves the track through the :class:`FrameFeed` protocol.
"""

from decart_sync.media.sources._as_source import as_source
from decart_sync.media.sources._base import VideoSource
from decart_sync.media.sources._camera import camera
from decart_sync.media.sources._feed import FrameFeed, Pacing
from decart_sync.media.sources._file import video_file
from decart_sync.media.sources._pattern import test_pattern
from decart_sync.media.sources._pull import CaptureSource, IterableSource
from decart_sync.media.sources._push import PushSource
from decart_sync.media.sources._track_source import TrackSource

__all__ = [
    "CaptureSource",
    "FrameFeed",
    "IterableSource",
    "Pacing",
    "PushSource",
    "TrackSource",
    "VideoSource",
    "as_source",
    "camera",
    "test_pattern",
    "video_file",
]
