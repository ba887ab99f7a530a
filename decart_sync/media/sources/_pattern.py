"""The synthetic test pattern as a source, running in real time at its own frame rate."""

from __future__ import annotations

from fractions import Fraction

from aiortc.mediastreams import MediaStreamTrack

from decart_sync.media.sources._base import VideoSource, check_positive_int
from decart_sync.media.sources._feed import Pacing
from decart_sync.media.sources._pull import PullSource
from decart_sync.media.test_pattern import PatternRenderer

__all__ = ["TestPatternSource", "test_pattern"]


class TestPatternSource(PullSource):
    """The synthetic pattern, running in real time at its own frame rate."""

    def __init__(self, width: int, height: int, fps: int, seed: int) -> None:
        # Drawn when its frame is due, like a camera's newest frame: a picture drawn ahead would
        # wait for the rate and reach the model older than a live input's.
        super().__init__(f"test pattern {width}x{height}@{fps}", pacing=Pacing.WHEN_DUE)
        self._pattern: PatternRenderer | None = PatternRenderer(width, height, seed)  # validates
        self._spec = (width, height, seed)
        self._fps = fps
        # Seconds of pattern time shown so far; exact, so equal rates map frame k to frame k.
        self._position = Fraction(0)

    def _read(self, fps: int) -> object:
        n = int(self._position * self._fps)
        self._position += Fraction(1, fps)
        pattern = self._pattern
        if pattern is None:
            pattern = self._pattern = PatternRenderer(*self._spec)
        return pattern.render(n)

    def track_ended(self, track: MediaStreamTrack) -> None:
        super().track_ended(track)
        # The backdrop is a whole frame: a source kept after its session closed does not keep
        # it (drawn again if the source is used again).
        self._pattern = None


def test_pattern(
    *, width: int = 640, height: int = 352, fps: int = 30, seed: int = 0
) -> VideoSource:
    """A synthetic, deterministic input: moving coloured shapes and a large frame counter.

    Frame ``n`` is :func:`~decart_sync.media.render_test_pattern` ``(n, width, height, seed)``.
    The pattern runs at ``fps`` in real time; at a different model rate its frames repeat or are
    skipped.
    """
    check_positive_int("fps", fps)
    return TestPatternSource(width, height, fps, seed)


# Keep pytest from collecting the factory as a test when a test module imports it.
test_pattern.__test__ = False  # type: ignore[attr-defined]
