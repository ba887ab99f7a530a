"""What ``decart-sync demo`` and ``decart-sync run`` share: one realtime session driven from
connect to summary.

:func:`stream_session` connects, records the transformed stream to an MP4 on a
:class:`~decart_sync.media.recorder.SessionRecorder` thread, watches the output from the calling
thread (counting frames, reading the demo's timecode for per-frame latency, switching the prompt
halfway if asked), shows progress, and stops after the planned time, when the input runs out,
when the session ends, or on Ctrl-C. Either way the MP4 is finished properly and a
:class:`LiveResult` comes back for :func:`finish`, which prints the summary and picks the exit
code.
"""

from __future__ import annotations

import collections
import math
import pathlib
import shutil
import sys
import time
from typing import TextIO

import attrs
import av

from decart_sync._redact import redact
from decart_sync.client import DecartClient
from decart_sync.commands._common import EXIT_INTERRUPTED, EXIT_RUNTIME
from decart_sync.errors import DecartSDKError, DecartTimeoutError, SessionClosedError
from decart_sync.media.recorder import RecordingResult, SessionRecorder
from decart_sync.media.sources import VideoSource
from decart_sync.media.timecode import StampedPattern
from decart_sync.models import ModelDefinition
from decart_sync.realtime._session import RealtimeClient

__all__ = ["LivePlan", "LiveResult", "Progress", "finish", "print_summary", "stream_session"]

CONNECT_TIMEOUT = 30.0
# A connected session that sends nothing for this long is treated as failed.
FIRST_FRAME_TIMEOUT = 20.0
# After the input runs out, how long to keep reading for the last transformed frames.
_INPUT_END_GRACE = 0.5
# The watcher waits at most this long for a frame, so progress and deadlines stay on time.
_WATCH_TICK = 0.1
# Output frames the watcher may fall behind by before it skips some (it only counts them and
# reads their timecode; the recorder has a backlog of its own).
_WATCH_BACKLOG = 120
# A latency reading above this is a misread (or a frame from long ago), not a measurement.
_MAX_LATENCY = 10.0
# The live latency figure is the median of this many recent frames.
_RECENT_LATENCIES = 60


# ---------------------------------------------------------------------------- progress


class Progress:
    """Live progress on a terminal as one line rewritten in place; elsewhere (a log file, a
    pipe, CI) as a plain line every ``every`` seconds."""

    def __init__(self, stream: TextIO, *, interactive: bool | None = None, every: float = 2.0):
        self._stream = stream
        if interactive is None:
            isatty = getattr(stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self._interactive = interactive
        # A terminal line is redrawn a few times a second: often enough to look live, rarely
        # enough to cost nothing.
        self._every = 0.25 if interactive else every
        # A terminal shows the line at once; a log gets its first line after one period, when
        # there is something to say.
        self._next = 0.0 if interactive else time.monotonic() + every
        self._drawn = False

    @property
    def due(self) -> bool:
        return time.monotonic() >= self._next

    def show(self, text: str) -> None:
        self._next = time.monotonic() + self._every
        if self._interactive:
            # A line that wraps could not be rewritten in place: keep it inside the terminal.
            text = text[: shutil.get_terminal_size().columns - 1]
            # Carriage return and erase-to-end-of-line: the new text replaces the old.
            self._stream.write(f"\r{text}\x1b[K")
            self._drawn = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Leave the terminal on a clean line, ready for the summary."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False


# ---------------------------------------------------------------------------- the session


@attrs.frozen
class LivePlan:
    """What to stream, how, and for how long."""

    model: ModelDefinition
    source: VideoSource
    output: pathlib.Path
    prompt: str | None = None
    image: str | None = None
    second_prompt: str | None = None
    """Switched to halfway through ``seconds`` (needs ``seconds``)."""
    seconds: float | None = None
    """How long to stream, from the first transformed frame; None: until the input ends or
    Ctrl-C."""
    pattern: StampedPattern | None = None
    """The stamped synthetic input ``source`` reads, if it does: enables per-frame latency."""
    service: str = ""
    """Where the session runs, for the summary ("the local emulator at ...")."""
    transport: str = "auto"
    """``auto``, ``livekit`` or ``webrtc`` (``--transport``)."""


@attrs.frozen
class LiveResult:
    """Everything the summary reports."""

    plan: LivePlan
    elapsed: float
    """Seconds from the first transformed frame to the stop."""
    frames_sent: int
    frames_received: int
    output_fps: float
    """Transformed frames per second, from the first one to the last."""
    latencies: tuple[float, ...]
    """Seconds from the SDK reading an input frame from its source to the first transformed
    frame showing it arriving, one per input frame seen in the output (stamped input only)."""
    inputs_skipped: int | None
    """Stamped input frames that never showed up in the output (None: not measurable)."""
    switch_at: float | None
    """Seconds into the stream when the second prompt was applied."""
    switch_ack: float | None
    """Seconds the service took to acknowledge the second prompt."""
    rtt_ms: float | None
    transport: str
    """The transport the session used (``auto`` resolved)."""
    recording: RecordingResult
    stopped_by: str
    """"time", "input" (the input ran out), "session" (it ended) or "interrupted"."""
    error: BaseException | None = attrs.field(default=None, eq=False)


def percentile(values: collections.abc.Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``values`` by nearest rank; values must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class _Watcher:
    """Reads the transformed stream in the calling thread: counts frames, and matches the
    demo's timecodes with their send times."""

    def __init__(self, session: RealtimeClient, pattern: StampedPattern | None) -> None:
        self._consumer = session.frames("av", policy="fifo", maxsize=_WATCH_BACKLOG)
        self._pattern = pattern
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.received = 0
        self.latencies: list[float] = []
        self.recent: collections.deque[float] = collections.deque(maxlen=_RECENT_LATENCIES)
        self._last_number: int | None = None
        self._numbers: set[int] = set()

    def poll(self, timeout: float) -> bool:
        """Take the next frame, waiting up to ``timeout``; False if none came. Raises
        SessionClosedError once the stream has ended cleanly, or the error it ended with."""
        try:
            info = self._consumer.get_info(timeout)
        except DecartTimeoutError:
            return False
        self.received += 1
        if self.first_at is None:
            self.first_at = info.received_at
        self.last_at = info.received_at
        if self._pattern is not None:
            self._measure(self._pattern, info.frame, info.received_at)
        return True

    def _measure(self, pattern: StampedPattern, frame: av.VideoFrame, received_at: float) -> None:
        code = pattern.read(frame)
        if code is None:
            return
        sent = pattern.sent_at(code)
        # The model repeats its last output while no new input is ready: only the first frame
        # showing an input frame measures that frame's latency.
        if sent is None or sent[0] == self._last_number:
            return
        number, sent_at = sent
        latency = received_at - sent_at
        if not 0 <= latency <= _MAX_LATENCY:
            return
        self._last_number = number
        self._numbers.add(number)
        self.latencies.append(latency)
        self.recent.append(latency)

    def rate(self) -> float:
        """Frames per second between the first frame and the last."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return (self.received - 1) / (self.last_at - self.first_at)

    def inputs_skipped(self) -> int | None:
        if len(self._numbers) < 2:
            return None
        return max(self._numbers) - min(self._numbers) + 1 - len(self._numbers)

    def close(self) -> None:
        self._consumer.close()


def _progress_line(
    plan: LivePlan, session: RealtimeClient, watcher: _Watcher, elapsed: float, prompt: str | None
) -> str:
    stats = session.stats()
    span = f"{elapsed:5.1f} s" + (f" / {plan.seconds:g} s" if plan.seconds else "")
    if plan.pattern is None:  # no per-frame latency: the network round trip is what we have
        latency = "rtt    - ms" if stats.rtt_ms is None else f"rtt {stats.rtt_ms:4.0f} ms"
    elif watcher.recent:
        latency = f"p50 {percentile(watcher.recent, 0.5) * 1000:4.0f} ms"
    else:
        latency = "p50    - ms"
    shown = f'  "{prompt}"' if prompt else ""
    return (
        f"{span}  in {stats.frames_sent:5d}  out {watcher.received:5d}  "
        f"{stats.fps_out:4.1f} fps  {latency}  {stats.state}{shown}"
    )


def stream_session(client: DecartClient, plan: LivePlan, progress: Progress) -> LiveResult:
    """Connect, record and watch as ``plan`` says, then stop cleanly and report.

    Ctrl-C during the stream stops it like the end of the planned time (the result says
    ``stopped_by="interrupted"``); during connect it propagates. A session that fails midway
    ends the stream with ``result.error`` set; the recording keeps what came before.
    """
    session = client.realtime.connect(
        plan.model,
        plan.source,
        prompt=plan.prompt,
        image=plan.image,
        transport=plan.transport,  # type: ignore[arg-type]  # argparse checked the choice
        timeout=CONNECT_TIMEOUT,
    )
    recorder: SessionRecorder | None = None
    watcher: _Watcher | None = None
    try:
        recorder = SessionRecorder(session, plan.output, fps=plan.model.fps).start()
        watcher = _Watcher(session, plan.pattern)
        return _watch(session, plan, recorder, watcher, progress)
    finally:
        progress.close()
        if watcher is not None:
            watcher.close()
        if recorder is not None:
            recorder.stop()  # a no-op when _watch already stopped it
        session.disconnect()


def _watch(
    session: RealtimeClient,
    plan: LivePlan,
    recorder: SessionRecorder,
    watcher: _Watcher,
    progress: Progress,
) -> LiveResult:
    connected = time.monotonic()
    prompt = plan.prompt
    switch_at: float | None = None
    switch_ack: float | None = None
    input_ended_at: float | None = None
    stopped_by = "time"
    error: BaseException | None = None
    try:
        while True:
            now = time.monotonic()
            # The clock starts with the first transformed frame, so both halves of the
            # recording get their full share whatever the connect took.
            if watcher.first_at is None:
                elapsed = 0.0
                if now - connected >= FIRST_FRAME_TIMEOUT:
                    raise DecartTimeoutError(
                        f"no transformed frame within {FIRST_FRAME_TIMEOUT:g} s of connecting"
                    )
            else:
                elapsed = now - watcher.first_at
            if plan.seconds is not None and elapsed >= plan.seconds:
                break
            # The grace runs from the first transformed frame at the earliest: a short input (a
            # still image is one frame) may end before the session has answered at all.
            if plan.source.ended and watcher.first_at is not None:
                input_ended_at = input_ended_at or now
                if now - input_ended_at >= _INPUT_END_GRACE:
                    stopped_by = "input"
                    break
            if (
                plan.second_prompt is not None
                and plan.seconds is not None
                and switch_at is None
                and elapsed >= plan.seconds / 2
            ):
                asked = time.monotonic()
                session.set_prompt(plan.second_prompt)
                switch_ack = time.monotonic() - asked
                switch_at, prompt = elapsed, plan.second_prompt
            if progress.due:
                progress.show(_progress_line(plan, session, watcher, elapsed, prompt))
            watcher.poll(_WATCH_TICK)
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    except SessionClosedError:
        stopped_by = "session"
    except DecartSDKError as failure:
        stopped_by, error = "session", failure
    stopped = time.monotonic()
    progress.close()
    recording = recorder.stop()
    if error is None and recording.error is not None:
        error = recording.error
    stats = session.stats()
    first = watcher.first_at
    return LiveResult(
        plan=plan,
        elapsed=0.0 if first is None else stopped - first,
        frames_sent=stats.frames_sent,
        frames_received=stats.frames_received,
        output_fps=watcher.rate(),
        latencies=tuple(watcher.latencies),
        inputs_skipped=watcher.inputs_skipped(),
        switch_at=switch_at,
        switch_ack=switch_ack,
        rtt_ms=stats.rtt_ms,
        transport=stats.transport,
        recording=recording,
        stopped_by=stopped_by,
        error=error,
    )


def finish(name: str, result: LiveResult, out: TextIO) -> int:
    """Print the summary (and, on failure, one error line on stderr); return the exit code.

    0 for a stream that ran its course; 130 for one cut short by Ctrl-C, unless Ctrl-C was the
    planned way to end it (no --seconds); 1 if the session failed or nothing came back.
    """
    print_summary(result, out)
    problem = None
    if result.error is not None:
        message = getattr(result.error, "message", None) or str(result.error)
        problem = f"the session failed: {redact(message)}"
    elif result.recording.frames == 0:
        problem = "no transformed frame arrived"
    if problem is not None:
        print(f"decart-sync {name}: error: {problem}", file=sys.stderr)
        return EXIT_RUNTIME
    if result.stopped_by == "interrupted" and result.plan.seconds is not None:
        return EXIT_INTERRUPTED
    return 0


# ---------------------------------------------------------------------------- the summary


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.0f} kB"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def print_summary(result: LiveResult, out: TextIO) -> None:
    """The end-of-run report: frames, rate, latency, drops and the file."""
    plan, recording = result.plan, result.recording
    ending = {
        "time": "",
        "input": " (the input ended)",
        "session": " (the session ended)",
        "interrupted": " (interrupted)",
    }[result.stopped_by]
    lines = [
        f"Streamed {result.elapsed:.1f} s of {plan.model.name} on {plan.service} "
        f"over {result.transport}{ending}.",
        "",
    ]
    if plan.prompt is not None or plan.image is not None:
        first = f'"{plan.prompt}"' if plan.prompt is not None else "(no prompt)"
        if plan.image is not None:
            first += f" with reference image {plan.image}"
        if result.switch_at is not None and plan.second_prompt is not None:
            ack = (
                ""
                if result.switch_ack is None
                else f", acknowledged in {result.switch_ack * 1000:.0f} ms"
            )
            lines.append(
                f"  prompts   {first} for {result.switch_at:.1f} s, "
                f'then "{plan.second_prompt}"{ack}'
            )
        else:
            lines.append(f"  prompt    {first}")
    repeats = ""
    if result.frames_received > result.frames_sent:
        repeats = (
            f" (the service sends at the model's {plan.model.fps} fps, repeating its last frame "
            "until new input arrives)"
        )
    lines.append(
        f"  frames    {result.frames_sent} sent, {result.frames_received} received, "
        f"{recording.frames} recorded{repeats}"
    )
    lines.append(f"  rate      {result.output_fps:.1f} fps out (model: {plan.model.fps} fps)")
    if result.latencies:
        p50 = percentile(result.latencies, 0.5) * 1000
        p95 = percentile(result.latencies, 0.95) * 1000
        lines.append(
            f"  latency   p50 {p50:.0f} ms, p95 {p95:.0f} ms over "
            f"{_plural(len(result.latencies), 'frame')} (input frame read -> output frame "
            "received)"
        )
    else:
        why = (
            "no stamped frame came back"
            if plan.pattern is not None
            else "per-frame latency needs the synthetic input"
        )
        rtt = "" if result.rtt_ms is None else f"; network round trip {result.rtt_ms:.0f} ms"
        lines.append(f"  latency   not measured ({why}){rtt}")
    dropped = []
    if result.inputs_skipped is not None:
        dropped.append(f"{_plural(result.inputs_skipped, 'input frame')} skipped by the model")
    dropped.append(f"{_plural(recording.frames_dropped, 'output frame')} not recorded")
    lines.append(f"  dropped   {', '.join(dropped)}")
    if recording.frames:
        lines.append(
            f"  output    {recording.path} ({recording.width}x{recording.height}, "
            f"{recording.duration:.1f} s, {_megabytes(recording.size_bytes)})"
        )
    else:
        lines.append("  output    nothing recorded (no transformed frame arrived)")
    out.write("\n".join(lines) + "\n")
    out.flush()
