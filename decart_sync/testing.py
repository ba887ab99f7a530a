"""pytest plugin (entry point ``pytest11``): the ``decart_emulator`` fixture,
:func:`wait_until` for tests that must wait for something a session does on its own threads, and
the ``private_netns`` fixture (:func:`run_in_netns`) for tests of libwebrtc clients.

Test your own app against a local emulator, with no API key and no credits::

    def test_my_app(decart_emulator):
        client = DecartClient(
            api_key=decart_emulator.api_key,
            base_url=decart_emulator.url,
            realtime_base_url=decart_emulator.realtime_url,
        )
        ...

Test a libwebrtc client (the ``livekit`` SDK, Chromium) against an emulator: both run in a
subprocess inside a private network namespace (protocol.md section 10)::

    def test_room(private_netns):
        result = private_netns([sys.executable, "my_driver.py"], timeout=60)
        assert result.returncode == 0, result.stderr

Every pytest run of anyone who installed decart-sync loads this module, possibly without the
emulator's dependencies (aiohttp, aiortc), so the emulator is imported only inside the fixture.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from decart_sync.emulator import Emulator


@pytest.fixture
def decart_emulator() -> Iterator[Emulator]:
    """A running :class:`~decart_sync.emulator.Emulator` on 127.0.0.1 and a free port,
    stopped after the test. Fault methods (``drop_websocket``, ``delay_acks``, ...) act on it."""
    try:
        from decart_sync.emulator import Emulator
    except ImportError as exc:
        raise RuntimeError(
            f"the decart_emulator fixture needs the emulator extra ({exc}); "
            "install it with: pip install 'decart-sync[emulator]'"
        ) from exc

    emulator = Emulator(host="127.0.0.1", port=0).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "", poll: float = 0.005
) -> None:
    """Return once ``predicate()`` is true; raise AssertionError naming ``what`` after
    ``timeout`` seconds. A session works on its own threads: a test waits for the state it
    expects, with a deadline, rather than sleeping for a time that is too short when the machine
    is busy and wasted when it is not."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(poll)


# --------------------------------------------------------------------------- network namespaces
#
# libwebrtc never gathers candidates on a loopback interface, so on a machine that may contact
# nothing but loopback it cannot connect at all. In a network namespace of its own it can: a veth
# pair carrying 127.0.0.2 is an interface libwebrtc accepts, and since that address is local, the
# kernel delivers its packets to 127.0.0.1 (where the emulator listens) without ever leaving the
# namespace, which has no route anywhere else. The namespace dies with the process it was made
# for, so nothing needs cleaning up.

#: The address libwebrtc clients gather their candidates on inside the namespace.
NETNS_CLIENT_ADDRESS = "127.0.0.2"

_NETNS_SETUP = (
    "set -e; "
    "ip link set lo up; "
    "ip link add t0 type veth peer name t1; "
    f"ip addr add {NETNS_CLIENT_ADDRESS}/32 dev t0; "
    "ip link set t0 up; "
    "ip link set t1 up; "
    'exec "$@"'
)
# How long the probe may take: unshare and four ip commands, on a busy machine.
_PROBE_TIMEOUT = 20.0


def netns_command(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` in a new private network namespace set up as
    protocol.md section 10 says (``lo`` up, a veth pair with 127.0.0.2 on ``t0``)."""
    # argv travels as positional parameters ("$@"), never through the shell's parser.
    return ["unshare", "--net", "sh", "-c", _NETNS_SETUP, "decart-netns", *argv]


@functools.lru_cache(maxsize=1)
def netns_unavailable_reason() -> str | None:
    """Why :func:`run_in_netns` cannot work here (no ``unshare``/``ip``, not permitted, no veth
    support), or None when it can. Probed once per process by setting up a namespace."""
    for tool in ("unshare", "ip", "sh"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed"
    try:
        probe = subprocess.run(
            netns_command(["true"]),
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot set up a private network namespace: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.strip() or f"exit status {probe.returncode}"
        return f"cannot set up a private network namespace (needs root): {detail}"
    return None


def run_in_netns(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a new private network namespace and return what it printed (text).
    Raises RuntimeError naming the reason when namespaces are unavailable here, and
    ``subprocess.TimeoutExpired`` (after killing it) when it outlives ``timeout``."""
    reason = netns_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    return subprocess.run(
        netns_command(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        cwd=cwd,
        check=False,
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_netns() -> None:
    """Skip the calling test (or fixture) with the reason when private network namespaces are
    unavailable here; under CI (``CI`` set) fail it instead, since CI runs as root and must run
    these tests."""
    reason = netns_unavailable_reason()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI must run network-namespace tests, but {reason}")
        pytest.skip(reason)


@pytest.fixture
def private_netns() -> Callable[..., subprocess.CompletedProcess[str]]:
    """:func:`run_in_netns`, for a test that runs a libwebrtc client in a private network
    namespace; see :func:`require_netns` for where it skips or fails."""
    require_netns()
    return run_in_netns
