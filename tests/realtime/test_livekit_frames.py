"""The LiveKit transport's frame conversions: a yuv420p ``av.VideoFrame`` into the contiguous
I420 buffer ``capture_frame`` reads, and a received I420 ``rtc.VideoFrame`` into the
``av.VideoFrame`` the hub takes, pixel for pixel, without a network."""

from __future__ import annotations

import gc
from typing import Any

import av
import numpy as np
import pytest

rtc = pytest.importorskip("livekit.rtc")

from decart_sync.realtime import _livekit  # noqa: E402 - after the skip


def _i420(width: int, height: int, seed: int) -> np.ndarray[Any, Any]:
    """Random contiguous I420 bytes (Y, then U and V rounded up for odd sizes)."""
    chroma = ((width + 1) // 2) * ((height + 1) // 2)
    return np.random.default_rng(seed).integers(0, 256, width * height + 2 * chroma, dtype=np.uint8)


def _planes_of(frame: av.VideoFrame) -> np.ndarray[Any, Any]:
    parts = []
    for plane, (w, h) in zip(
        frame.planes, _livekit._i420_planes(frame.width, frame.height), strict=True
    ):
        parts.append(_livekit._plane_pixels(plane, w, h).reshape(-1))
    return np.concatenate(parts)


@pytest.mark.parametrize("size", [(640, 352), (1280, 720), (1088, 624), (322, 178), (7, 5)])
def test_packed_i420_is_the_frames_planes_in_order(size: tuple[int, int]) -> None:
    width, height = size
    packer = _livekit._I420Packer()
    for seed in range(3):  # the same buffer serves every frame
        frame = av.VideoFrame(width, height, "yuv420p")
        expected = _i420(width, height, seed)
        offset = 0
        for plane, (w, h) in zip(frame.planes, _livekit._i420_planes(width, height), strict=True):
            _livekit._plane_pixels(plane, w, h)[...] = expected[offset : offset + w * h].reshape(
                h, w
            )
            offset += w * h
        packed = packer.pack(frame)
        assert (packed.width, packed.height) == (width, height)
        assert packed.type == rtc.VideoBufferType.I420
        assert np.array_equal(np.frombuffer(packed.data, np.uint8), expected)


def test_packer_converts_other_formats_and_follows_size_changes() -> None:
    packer = _livekit._I420Packer()
    picture = np.full((64, 96, 3), 128, np.uint8)  # grey: Y (limited range), U and V near 128
    packed = packer.pack(av.VideoFrame.from_ndarray(picture, format="bgr24"))
    assert (packed.width, packed.height) == (96, 64)
    assert np.abs(np.frombuffer(packed.data, np.uint8).astype(int) - 128).max() <= 4
    packed = packer.pack(av.VideoFrame(32, 16, "yuv420p"))
    assert len(packed.data) == 32 * 16 * 3 // 2


@pytest.mark.parametrize("size", [(640, 352), (1280, 720), (7, 5)])
def test_received_i420_becomes_the_same_av_frame(size: tuple[int, int]) -> None:
    width, height = size
    data = _i420(width, height, 1)
    received = rtc.VideoFrame(width, height, rtc.VideoBufferType.I420, bytearray(data.tobytes()))
    picture = _livekit._as_av_frame(received)
    del received
    gc.collect()
    # The frame keeps the pixels alive on its own, and reads as the sent planes.
    _ = [bytearray(len(data)) for _ in range(20)]
    assert (picture.width, picture.height, picture.format.name) == (width, height, "yuv420p")
    assert np.array_equal(_planes_of(picture), data)
    bgr = picture.to_ndarray(format="bgr24")
    assert bgr.shape == (height, width, 3)


def test_round_trip_through_both_conversions() -> None:
    width, height = 640, 352
    picture = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
    sent = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
    packed = _livekit._I420Packer().pack(sent)
    copy = rtc.VideoFrame(width, height, packed.type, bytearray(packed.data))
    back = _livekit._as_av_frame(copy)
    assert np.array_equal(back.to_ndarray(), sent.to_ndarray())


@pytest.mark.parametrize(
    ("size", "fps", "codec", "bitrate"),
    [
        ((640, 352), 30, "h264", 800_000),  # LiveKit alone would cap this one at 25 fps
        ((1280, 720), 30, "h264", 3_000_000),
        ((1280, 704), 30, "vp8", 3_000_000),
        ((1280, 704), 20, "vp9", 2_550_000),
        ((640, 480), 30, "h264", 450_000),  # 4:3: LiveKit's other table
        ((4096, 2160), 30, "av1", 5_600_000),  # past the largest preset: the largest
    ],
)
def test_the_track_is_published_at_the_models_rate_with_livekits_bitrate(
    size: tuple[int, int], fps: int, codec: str, bitrate: int
) -> None:
    encoding = _livekit.publish_encoding(*size, fps, codec)
    assert encoding.max_framerate == fps
    assert encoding.max_bitrate == bitrate
