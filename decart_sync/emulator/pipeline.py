"""The emulator's CPU "model": incoming video in, transformed video out at the model's rate.

Three loops run per session, all on the emulator's event loop, none of them doing pixel work:

- the **drain** reads every frame the client sends (someone must always read a remote track, or
  aiortc queues frames without bound) and keeps only the newest one; until the input is opened
  (:meth:`FramePipeline.open_input`: the session has its initial state) it keeps none;
- the **renderer** takes the newest input and has the session's current
  :class:`~decart_sync.emulator.effects.Effect` render it in an executor thread; inputs that
  arrive while it is busy replace each other and are counted as dropped;
- the **output track** hands out the latest rendered frame at the model's frame rate with 90 kHz
  timestamps, repeating it when nothing newer exists (and while video is frozen by a fault).

The output track is read through one ``MediaRelay`` by the producer and every viewer, so all of
them see the same frames.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from decart_sync._redact import get_logger
from decart_sync._tasks import TaskSet, read_track
from decart_sync.emulator.effects import Effect, effect_for
from decart_sync.models import ModelDefinition

_log = get_logger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
# How long a state change waits for a frame rendered with the new effect before it is
# acknowledged anyway (a stalled executor must not stall the session's signaling).
RERENDER_TIMEOUT = 2.0


def _copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    # A frame that was already handed out may still be being encoded on another thread, so a
    # repeat gets its own object (its pts differs). ~0.2 ms at 1088x624.
    return av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)


class RenderedVideoTrack(MediaStreamTrack):
    """The session's outgoing video: the pipeline's frames, paced at the model's fps."""

    kind = "video"

    def __init__(self, pipeline: FramePipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._pipeline.next_output_frame()


class FramePipeline:
    """Drains one session's input video, renders it with the current effect, paces the output.

    Create and use it on the event loop. ``on_first_output`` is called (on the loop) when the
    first rendered frame goes out. With ``input_open=False`` input frames are read and counted
    as dropped until :meth:`open_input`, as the service drops a session's frames until its
    initial state (or passthrough) arrived.
    """

    def __init__(
        self,
        model: ModelDefinition,
        executor: concurrent.futures.Executor,
        on_first_output: Callable[[], None],
        *,
        input_open: bool = True,
    ) -> None:
        self.model = model
        self.input_open = input_open
        self.output = RenderedVideoTrack(self)
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self._executor = executor
        self._on_first_output = on_first_output
        self._effect: Effect = effect_for(None, None)
        self._version = 0
        self._pending: av.VideoFrame | None = None
        self._latest_input: av.VideoFrame | None = None
        self._input_ready = asyncio.Event()
        self._latest_output: av.VideoFrame | None = None
        self._first_output_ready = asyncio.Event()
        # (state version, future) pairs of state changes waiting for their first rendered frame.
        self._rerender_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._clock_start: float | None = None
        self._tick = 0
        self._last_source: av.VideoFrame | None = None
        self._frozen_until = 0.0
        self._tasks = TaskSet("decart-emulator")
        self._closed = False
        self._spawn(self._render_loop(), "render")

    @property
    def effect(self) -> Effect:
        return self._effect

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        self._tasks.spawn(coro, what)

    # ------------------------------------------------------------------ input

    def open_input(self) -> None:
        """Feed the frames that arrive from now on to the model."""
        self.input_open = True

    def attach_input(self, track: MediaStreamTrack) -> None:
        """Start draining a track the client sends. Video feeds the model; audio is discarded."""
        if track.kind == "video":
            self._spawn(read_track(track, self._take_input), "drain-video")
        else:
            self._spawn(read_track(track), "drain-audio")

    def _take_input(self, frame: Any) -> None:
        if not isinstance(frame, av.VideoFrame):
            return
        self.frames_in += 1
        if not self.input_open:
            self.frames_dropped += 1
            return
        if self._pending is not None:
            self.frames_dropped += 1
        self._pending = frame
        self._latest_input = frame
        self._input_ready.set()

    # ------------------------------------------------------------------ rendering

    async def set_effect(self, effect: Effect) -> None:
        """Make ``effect`` current. Returns once a frame rendered with it is the latest output
        (at once if no input has arrived yet), so that the next frame sent shows it."""
        self._effect = effect
        self._version += 1
        if self._latest_input is None or self._closed:
            return
        if self._pending is None:
            self._pending = self._latest_input
            self._input_ready.set()
        waiter = asyncio.get_running_loop().create_future()
        self._rerender_waiters.append((self._version, waiter))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), RERENDER_TIMEOUT)
        except asyncio.TimeoutError:
            _log.warning("no frame rendered with the new state within %ss", RERENDER_TIMEOUT)

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        width, height = self.model.width, self.model.height
        while True:
            await self._input_ready.wait()
            self._input_ready.clear()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            effect, version = self._effect, self._version
            try:
                rendered = await loop.run_in_executor(
                    self._executor, effect.render, frame, width, height
                )
            except RuntimeError:
                # The executor refuses work once it (or the interpreter) is shutting down.
                _log.debug("render executor is shut down; stopping the renderer")
                return
            except Exception:
                _log.exception("effect %r failed to render a frame", effect.name)
                continue
            if version != self._version:
                # The state changed while this frame was rendering: render it again with the
                # new effect rather than show the old one after the change was acknowledged.
                if self._pending is None:
                    self._pending = frame
                self._input_ready.set()
                continue
            self._latest_output = rendered
            self._first_output_ready.set()
            self._release_rerender_waiters(version)

    def _release_rerender_waiters(self, version: int) -> None:
        still_waiting = []
        for wanted, waiter in self._rerender_waiters:
            if wanted <= version:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still_waiting.append((wanted, waiter))
        self._rerender_waiters = still_waiting

    # ------------------------------------------------------------------ output

    def freeze(self, seconds: float) -> None:
        """Repeat the last frame sent, with no new content, for ``seconds``."""
        self._frozen_until = asyncio.get_running_loop().time() + max(0.0, seconds)

    def unfreeze(self) -> None:
        self._frozen_until = 0.0

    @property
    def frozen(self) -> bool:
        return asyncio.get_running_loop().time() < self._frozen_until

    async def next_output_frame(self) -> av.VideoFrame:
        """The next frame to send, at the model's pace."""
        loop = asyncio.get_running_loop()
        fps = self.model.fps
        if self._clock_start is None:
            await self._first_output_ready.wait()
            self._clock_start = loop.time()
            self._tick = 0
        else:
            self._tick += 1
            lag = loop.time() - (self._clock_start + self._tick / fps)
            if lag < 0:
                await asyncio.sleep(-lag)
            elif lag > 2 / fps:
                # Fell behind (a busy machine): skip the missed ticks instead of bursting.
                self._tick = int((loop.time() - self._clock_start) * fps)
        if self._closed:
            raise MediaStreamError
        source: av.VideoFrame | None
        if self.frozen and self._last_source is not None:
            source = self._last_source
        else:
            source = self._latest_output
        assert source is not None  # set before _first_output_ready
        frame = _copy_frame(source) if source is self._last_source else source
        self._last_source = source
        frame.pts = round(self._tick * VIDEO_CLOCK_RATE / fps)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_out += 1
        if self.frames_out == 1:
            self._on_first_output()
        return frame

    # ------------------------------------------------------------------ lifetime

    async def close(self) -> None:
        """Stop every loop and the output track. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.output.stop()
        # Wake a paced reader waiting for its first frame, so the relay sees the track end.
        self._first_output_ready.set()
        for _, waiter in self._rerender_waiters:
            if not waiter.done():
                waiter.cancel()
        self._rerender_waiters.clear()
        await self._tasks.cancel_all()
