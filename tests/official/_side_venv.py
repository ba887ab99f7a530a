"""Decart's official Python client, installed unmodified from PyPI into a virtualenv of its own.

The tests in this folder run it in a subprocess against the emulator. Its dependencies (aiortc,
pydantic, websockets, OpenCV) must not mix with ours, so it gets a side venv, built once per
machine and kept in a cache folder named after the version and our Python (building takes
minutes; using it, a moment). A lock file keeps two test runs from building it at once, and a
marker written last means a half-built venv is never taken for a ready one.

``.ci/run`` builds it before the tests: ``python tests/official/_side_venv.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator

#: The last plain-WebRTC release of Decart's Python client (protocol.md).
DECART_PY_VERSION = "0.0.40"
# pip gets this long to install the client and its dependencies from the registry.
_INSTALL_TIMEOUT = 900.0


def cache_root() -> pathlib.Path:
    """Where side environments are kept: ``$DECART_TEST_CACHE``, else the user's cache folder."""
    configured = os.environ.get("DECART_TEST_CACHE")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "decart-sync-tests"


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class SideVenvUnavailable(RuntimeError):
    """The official client could not be installed (no registry, say); the text says why."""


def official_python(version: str = DECART_PY_VERSION) -> pathlib.Path:
    """The interpreter of a venv holding ``decart[realtime]==version``; built on first use."""
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    home = cache_root() / f"decart-py-{version}-{tag}"
    python = home / "venv" / "bin" / "python"
    ready = home / "ready"
    with _locked(home.with_suffix(".lock")):
        if ready.exists() and python.exists():
            return python
        shutil.rmtree(home / "venv", ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(home / "venv")
        try:
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"decart[realtime]=={version}"],
                check=True,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", None) or ""
            raise SideVenvUnavailable(
                f"pip could not install decart[realtime]=={version}: {output[-2000:]}"
            ) from None
        ready.write_text(version)
    return python


if __name__ == "__main__":
    print(official_python())
