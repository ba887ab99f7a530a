"""Conventions every ``decart-sync`` command shares: exit codes, one-line errors, where the API
key comes from, and validating the options several commands take.

:func:`run_command` is each command's error boundary: whatever goes wrong becomes one line on
stderr and an exit code (2 for a usage problem, 1 for a runtime one, 130 for Ctrl-C), never a
traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from decart_sync._redact import redact
from decart_sync.errors import (
    DecartSDKError,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    ModelNotFoundError,
)
from decart_sync.realtime._transports import TRANSPORTS

__all__ = [
    "DEFAULT_MODEL",
    "EXIT_INTERRUPTED",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "CommandError",
    "api_key_from_env",
    "check_seconds",
    "output_path",
    "run_command",
]

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a program stopped by SIGINT

DEFAULT_MODEL = "lucy-2.1"


class CommandError(Exception):
    """A failure to report as one line with an exit code (``EXIT_USAGE`` or ``EXIT_RUNTIME``)."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# SDK errors that mean the command was asked for something impossible, rather than that
# something went wrong while doing it.
_USAGE_ERRORS = (InvalidAPIKeyError, InvalidBaseURLError, InvalidInputError, ModelNotFoundError)


def _is_media_error(error: BaseException) -> bool:
    # PyAV is imported only by the commands that need it; if it is not loaded, it did not fail.
    av = sys.modules.get("av")
    return av is not None and isinstance(error, av.FFmpegError)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Make SIGTERM (``kill``, a container stopping) stop a command the way Ctrl-C does, so its
    recording is finished properly rather than cut off."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(name: str, body: Callable[[], int], *, verbose: bool = False) -> int:
    """Run a command's ``body`` and turn whatever it raises into one line and an exit code.

    With ``verbose``, SDK log records go to stderr and unexpected errors keep their traceback.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    prefix = f"decart-sync {name}: error:"
    try:
        with _terminate_as_interrupt():
            return body()
    except CommandError as error:
        print(f"{prefix} {redact(error.message)}", file=sys.stderr)
        return error.code
    except _USAGE_ERRORS as error:
        print(f"{prefix} {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except DecartSDKError as error:
        print(f"{prefix} {error.message}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"decart-sync {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if isinstance(error, OSError) or _is_media_error(error):
            # A file that cannot be written, a device that went away, a codec that failed:
            # the message says which, and a traceback would add nothing for the user.
            print(f"{prefix} {redact(str(error))}", file=sys.stderr)
            return EXIT_RUNTIME
        if verbose:
            raise
        print(
            f"{prefix} unexpected {type(error).__name__}: {redact(str(error))} "
            "(run again with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


def api_key_from_env() -> str:
    """The key from ``DECART_API_KEY``, or a usage error saying how to set it."""
    key = os.environ.get("DECART_API_KEY", "").strip()
    if not key:
        raise CommandError(
            "no API key: set DECART_API_KEY (for a local emulator, its key: decart-emulator-key)",
            EXIT_USAGE,
        )
    return key


def check_seconds(seconds: float) -> float:
    """``--seconds``, which must be a positive, finite number."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise CommandError(f"--seconds must be a positive number, got {seconds:g}", EXIT_USAGE)
    return seconds


def output_path(text: str) -> pathlib.Path:
    """``--output`` as an absolute path, checked before any session starts: a recording that
    cannot be written should fail now, not after connecting."""
    path = pathlib.Path(text).expanduser().resolve()
    if not path.parent.is_dir():
        raise CommandError(f"cannot write {path}: {path.parent} is not a directory", EXIT_USAGE)
    if path.is_dir():
        raise CommandError(f"--output {text} is a directory; name a file", EXIT_USAGE)
    return path


def add_transport_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="auto",
        help="how the video travels: auto (LiveKit for Decart's service, the legacy webrtc for "
        "a server on loopback such as the emulator), livekit or webrtc (default: auto)",
    )
