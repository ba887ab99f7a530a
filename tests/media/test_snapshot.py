"""Single frames to JPEG/PNG: what a snapshot endpoint or a "save this frame" button uses."""

from __future__ import annotations

import concurrent.futures
import io
import pathlib

import av
import numpy as np
import pytest
from _support.decoding import decode_image

from decart_sync.errors import InvalidInputError
from decart_sync.media import render_test_pattern
from decart_sync.media.snapshot import encode_jpeg, encode_png, save_frame


@pytest.fixture
def picture() -> np.ndarray:
    return render_test_pattern(7, 320, 176)


def test_png_round_trip_is_exact(tmp_path: pathlib.Path, picture: np.ndarray) -> None:
    path = save_frame(picture, tmp_path / "shot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode_image(path.read_bytes()), picture)


def test_jpeg_round_trip_is_close(tmp_path: pathlib.Path, picture: np.ndarray) -> None:
    path = save_frame(picture, tmp_path / "shot.JPG", quality=90)
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    decoded = decode_image(data)
    assert decoded.shape == picture.shape
    assert np.abs(decoded.astype(int) - picture).mean() < 4


def test_video_frames_are_accepted_and_left_alone(picture: np.ndarray) -> None:
    frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
    frame.pts = 1234
    decoded = decode_image(encode_jpeg(frame))
    assert np.abs(decoded.astype(int) - picture).mean() < 6
    assert frame.pts == 1234  # the caller's frame keeps its timestamp
    assert np.array_equal(decode_image(encode_png(frame)).shape, picture.shape)


def test_quality_trades_size_for_fidelity(picture: np.ndarray) -> None:
    low, high = encode_jpeg(picture, quality=10), encode_jpeg(picture, quality=95)
    assert len(low) < len(high)
    error = [np.abs(decode_image(d).astype(int) - picture).mean() for d in (low, high)]
    assert error[1] < error[0]


def test_encoding_from_several_threads_gives_the_same_bytes(picture: np.ndarray) -> None:
    expected = encode_jpeg(picture)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: encode_jpeg(picture), range(16)))
    assert all(result == expected for result in results)


def test_bad_input_is_a_clear_error(tmp_path: pathlib.Path, picture: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match=r"\.png"):
        save_frame(picture, tmp_path / "shot.gif")
    with pytest.raises(InvalidInputError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((10, 10), np.uint8))
    with pytest.raises(InvalidInputError, match="quality"):
        encode_jpeg(picture, quality=0)
    with pytest.raises(InvalidInputError, match="numpy"):
        encode_jpeg("not a frame")


def test_jpeg_keeps_greys_grey() -> None:
    # A plain BGR->4:2:0 conversion rounds neutral chroma to 127, tinting greys green.
    grey = np.full((64, 64, 3), 100, np.uint8)
    with av.open(io.BytesIO(encode_jpeg(grey, quality=95))) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="bgr24")
    blue, green, red = decoded.reshape(-1, 3).mean(axis=0)
    assert abs(green - blue) < 0.5 and abs(green - red) < 0.5
