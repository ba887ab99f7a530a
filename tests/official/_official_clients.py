"""Decart's official clients, fetched unmodified from their package registries for the tests.

- The Python client (``decart`` on PyPI) goes into a virtualenv of its own, one per version
  (0.0.40, plain WebRTC; 0.2.4, LiveKit rooms): its dependencies (aiortc or ``livekit``,
  pydantic, websockets, OpenCV) must not mix with ours.
- The JS client (``@decartai/sdk`` on npm) is installed with its dependencies and bundled by
  esbuild (also from npm) into one ES module a page can import; its code is not changed.

Each is built once per machine into a cache folder named after its version (building takes
seconds to minutes; using it, a moment). A lock file keeps two test runs from building the same
one at once, and a marker written last means a half-built one is never taken for a ready one.
Nothing of theirs enters this repository.

``.ci/run`` builds them all before the tests: ``python tests/official/_official_clients.py``.
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
from collections.abc import Iterator, Sequence

#: The last plain-WebRTC release of Decart's Python client (protocol.md).
DECART_PY_VERSION = "0.0.40"
#: The newest release of Decart's Python client on PyPI: LiveKit rooms (protocol.md).
DECART_PY_LIVEKIT_VERSION = "0.2.4"
#: A plain-WebRTC release of Decart's JS client that offers before any state (<= 0.0.47).
DECART_JS_VERSION = "0.0.46"
ESBUILD_VERSION = "0.24.2"
# A package manager gets this long to install a client and its dependencies.
_INSTALL_TIMEOUT = 900.0


class ClientUnavailable(RuntimeError):
    """An official client could not be installed (no registry or no npm, say); the text says
    why."""


def cache_root() -> pathlib.Path:
    """Where the clients are kept: ``$DECART_TEST_CACHE``, else the user's cache folder."""
    configured = os.environ.get("DECART_TEST_CACHE")
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "decart-sync-tests"


@contextlib.contextmanager
def _locked(home: pathlib.Path) -> Iterator[None]:
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: Sequence[str], what: str, cwd: pathlib.Path | None = None) -> None:
    try:
        subprocess.run(
            list(argv),
            check=True,
            capture_output=True,
            text=True,
            timeout=_INSTALL_TIMEOUT,
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise ClientUnavailable(f"cannot {what}: {exc}") from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", None) or ""
        raise ClientUnavailable(f"cannot {what}: {output[-2000:]}") from None


def official_python(version: str = DECART_PY_VERSION) -> pathlib.Path:
    """The interpreter of a venv holding ``decart[realtime]==version``; built on first use."""
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    home = cache_root() / f"decart-py-{version}-{tag}"
    python = home / "venv" / "bin" / "python"
    ready = home / "ready"
    with _locked(home):
        if ready.exists() and python.exists():
            return python
        shutil.rmtree(home / "venv", ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(home / "venv")
        _run(
            [str(python), "-m", "pip", "install", "-q", f"decart[realtime]=={version}"],
            f"install decart[realtime]=={version} from PyPI",
        )
        ready.write_text(version)
    return python


def official_js_bundle(version: str = DECART_JS_VERSION) -> pathlib.Path:
    """``@decartai/sdk@version`` as one browser ES module (``decart-sdk.js``); built on first
    use with npm and esbuild."""
    home = cache_root() / f"decart-js-{version}"
    bundle = home / "decart-sdk.js"
    ready = home / "ready"
    with _locked(home):
        if ready.exists() and bundle.exists():
            return bundle
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "package.json").write_text('{"private": true}\n')
        (home / "entry.js").write_text('export * from "@decartai/sdk";\n')
        _run(
            [
                "npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                f"@decartai/sdk@{version}", f"esbuild@{ESBUILD_VERSION}",
            ],
            f"install @decartai/sdk@{version} from npm",
            cwd=home,
        )  # fmt: skip
        _run(
            [
                str(home / "node_modules" / ".bin" / "esbuild"), "entry.js", "--bundle",
                "--format=esm", "--platform=browser", f"--outfile={bundle}",
            ],
            f"bundle @decartai/sdk@{version} with esbuild",
            cwd=home,
        )  # fmt: skip
        ready.write_text(version)
    return bundle


if __name__ == "__main__":
    print(official_python(DECART_PY_VERSION))
    print(official_python(DECART_PY_LIVEKIT_VERSION))
    if shutil.which("npm") is not None:
        print(official_js_bundle())
