"""Every ```python block of README.md runs as pasted, against a real emulator.

Each snippet runs in a fresh Python process, as a reader pasting it would run it:

* a snippet that brings its own emulator (``Emulator()``, ``client_or_emulator()``, the pytest
  fixture) runs with no ``DECART_*`` variable at all, so it shows it needs nothing set;
* any other snippet is written for Decart's service: it gets this test's emulator through the
  variables the SDK reads (``DECART_API_KEY``, ``DECART_BASE_URL``,
  ``DECART_REALTIME_BASE_URL``), in a folder holding the files snippets name (``input.mp4``,
  ``ref.jpg``);
* the Flask snippet is followed by a visitor: Flask's test client opens its stream;
* a snippet defining ``test_*`` functions is a test file, run by pytest.

A snippet that never ended (a loop without its ``break``) would fail here rather than hang:
every process is bounded by ``_SNIPPET_TIMEOUT``. The ``decart-sync`` lines of the bash blocks
are parsed by the command's own arguments, which is cheap and catches a renamed option.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import shlex
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from _example_helpers import ROOT, jpeg_parts
from _support.decoding import decode_image
from _support.processes import offline_env

from decart_sync.emulator import Emulator
from decart_sync.media.snapshot import save_frame

README = ROOT / "README.md"
# Generous: a snippet streams a few seconds of video, and the machine may be busy.
_SNIPPET_TIMEOUT = 120.0


def _blocks(language: str) -> list[tuple[int, str]]:
    """The README's fenced blocks in ``language``, each with the line its code starts on."""
    text = README.read_text()
    fence = re.compile(rf"^```{language}\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return [(text.count("\n", 0, m.start(1)) + 1, m[1]) for m in fence.finditer(text)]


PYTHON_SNIPPETS = _blocks("python")


def _brings_its_own_emulator(code: str) -> bool:
    return any(name in code for name in ("Emulator(", "client_or_emulator(", "decart_emulator"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder with the input files the snippets name: a 2 s MP4 and a reference JPEG."""
    folder = tmp_path_factory.mktemp("readme")
    with av.open(str(folder / "input.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 176, "yuv420p"
        stream.time_base = Fraction(1, 30)
        for n in range(60):
            picture = np.zeros((176, 320, 3), np.uint8)
            picture[:, : 5 * n % 320] = (40, 160, 220)  # a bar that grows: a moving picture
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[:] = (200, 40, 40)
    save_frame(reference, folder / "ref.jpg")
    return folder


def _run(
    args: list[str], emulator: Emulator, cwd: pathlib.Path, *, service: bool
) -> subprocess.CompletedProcess[str]:
    extra = {}
    if service:
        extra = {
            "DECART_API_KEY": emulator.api_key,
            "DECART_BASE_URL": emulator.url,
            "DECART_REALTIME_BASE_URL": emulator.realtime_url,
        }
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=_SNIPPET_TIMEOUT,
        env=offline_env(**extra),
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


# Appended to the Flask snippet: a visitor opens the stream and keeps its first parts.
_VISIT_THE_STREAM = """
import itertools, sys
_response = app.test_client().get("/video.mjpg", buffered=False)
assert _response.status_code == 200, _response.status
assert _response.content_type == "multipart/x-mixed-replace; boundary=frame"
with open(sys.argv[1], "wb") as _out:
    for _part in itertools.islice(_response.response, 2):  # one JPEG per part
        _out.write(_part)
_response.close()
live.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [code for _, code in PYTHON_SNIPPETS],
    ids=[f"README.md:{line}" for line, _ in PYTHON_SNIPPETS],
)
def test_a_readme_snippet_runs_as_pasted(
    code: str, emulator: Emulator, workdir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    service = not _brings_its_own_emulator(code)
    if re.search(r"^def test_", code, re.MULTILINE):
        test_file = tmp_path / "test_snippet.py"
        test_file.write_text(code)
        # Outside the repository: only the installed package's plugin gives the fixture.
        result = _run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            emulator,
            tmp_path,
            service=service,
        )
        assert re.search(r"\b1 passed\b", result.stdout), result.stdout
    elif "Flask(__name__)" in code:
        stream = tmp_path / "stream.mjpg"
        script = tmp_path / "flask_snippet.py"
        script.write_text(code + _VISIT_THE_STREAM)
        _run([sys.executable, str(script), str(stream)], emulator, workdir, service=service)
        parts = jpeg_parts(stream.read_bytes())
        assert len(parts) == 2
        assert decode_image(parts[0]).shape == (720, 1280, 3)  # lucy-2.1's size
    else:
        script = tmp_path / "snippet.py"
        script.write_text(code)
        # Success is proof enough that the environment reached this emulator: Decart's
        # service, the only other place the SDK could go, would refuse the emulator's key.
        _run([sys.executable, str(script)], emulator, workdir, service=service)


def test_the_readme_has_every_kind_of_snippet() -> None:
    """The kinds the test above runs differently are all still there: a rename that dropped
    one would otherwise run nothing in its place."""
    codes = [code for _, code in PYTHON_SNIPPETS]
    assert any(re.search(r"^def test_", c, re.MULTILINE) for c in codes)
    assert any("Flask(__name__)" in c for c in codes)
    assert any(not _brings_its_own_emulator(c) for c in codes)


@pytest.mark.parametrize(
    "line",
    [
        line
        for _, code in _blocks("bash")
        for line in code.splitlines()
        if line.startswith("decart-sync ")
    ],
)
def test_a_readme_command_line_parses(line: str) -> None:
    from decart_sync.cli import _SUBCOMMANDS

    words = shlex.split(line, comments=True)
    module, _ = _SUBCOMMANDS[words[1]]
    parser = argparse.ArgumentParser(prog=f"decart-sync {words[1]}")
    importlib.import_module(module).add_arguments(parser)
    parser.parse_args(words[2:])  # exits with a usage error if an option is unknown
