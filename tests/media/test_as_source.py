"""as_source(): each kind of input connect() accepts becomes the right source, and anything
else is refused with a message that says what is accepted."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from _source_helpers import write_video
from _support.pictures import solid
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from decart_sync.errors import InvalidInputError
from decart_sync.media import (
    CaptureSource,
    IterableSource,
    PushSource,
    TrackSource,
    VideoSource,
    as_source,
    test_pattern,
    video_file,
)


class FakeCapture:
    """Looks like cv2.VideoCapture: read() -> (ok, frame)."""

    def __init__(self) -> None:
        self.released = False

    def read(self) -> tuple[bool, np.ndarray]:
        return True, solid(10)

    def release(self) -> None:
        self.released = True


def test_a_video_source_is_returned_as_is() -> None:
    for source in (PushSource(), test_pattern()):
        assert as_source(source) is source


def test_a_video_track_is_wrapped() -> None:
    track = VideoStreamTrack()
    assert isinstance(as_source(track), TrackSource)


def test_an_audio_track_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"kind 'video'.*'audio'"):
        as_source(AudioStreamTrack())


def test_iterables_and_generators_become_iterable_sources() -> None:
    frames = [solid(1), solid(2)]
    assert isinstance(as_source(frames), IterableSource)
    assert isinstance(as_source(f for f in frames), IterableSource)
    assert isinstance(as_source(np.stack(frames)), IterableSource)  # N x H x W x 3


def test_a_single_array_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInputError, match=r"single numpy array.*PushSource"):
        as_source(solid(1))


def test_a_read_capture_becomes_a_capture_source() -> None:
    assert isinstance(as_source(FakeCapture()), CaptureSource)


def test_a_file_path_becomes_a_video_file(tmp_path: pathlib.Path) -> None:
    path = write_video(tmp_path / "clip.mp4", [10, 20, 30], fps=10)
    for given in (path, str(path)):
        source = as_source(given)
        try:
            assert isinstance(source, VideoSource)
            assert "clip.mp4" in repr(source)
        finally:
            source.close()


def test_a_missing_file_is_refused(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(InvalidInputError, match=r"not found.*nope\.mp4"):
        as_source(str(missing))
    with pytest.raises(InvalidInputError, match=r"nope\.mp4"):
        video_file(missing)


def test_a_file_that_is_not_video_is_refused(tmp_path: pathlib.Path) -> None:
    words = tmp_path / "words.mp4"
    words.write_text("just some words\n")
    with pytest.raises(InvalidInputError, match=r"cannot open.*words\.mp4"):
        as_source(words)
    with pytest.raises(InvalidInputError, match="not a video file"):
        as_source(tmp_path)  # a directory


@pytest.mark.parametrize("bad", [42, None, 3.5, b"bytes", {"frame": 1}, object()])
def test_other_objects_are_refused_saying_what_is_accepted(bad: object) -> None:
    with pytest.raises(InvalidInputError) as caught:
        as_source(bad)
    message = str(caught.value)
    for accepted in ("VideoSource", "MediaStreamTrack", "iterable", "read()", "file path"):
        assert accepted in message
    assert type(bad).__name__ in message


def test_an_open_file_object_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "clip.bin"
    path.write_bytes(b"\0" * 10)
    with path.open("rb") as handle, pytest.raises(InvalidInputError, match="BufferedReader"):
        as_source(handle)
