"""Running the installed ``decart-sync`` console script the way a user does, and reading back
what it wrote."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

from _support.processes import offline_env

# The permanent key the CLI tests' emulator accepts (tests/cli/conftest.py): their own, so they
# can check it is never printed.
SECRET_KEY = "sk-cli-test-permanent-key-0123456789"


def console_script() -> str:
    """The ``decart-sync`` executable installed next to this interpreter (the venv's)."""
    beside = pathlib.Path(sys.executable).parent / "decart-sync"
    found = str(beside) if beside.exists() else shutil.which("decart-sync")
    assert found, "the decart-sync console script is not installed (pip install -e .)"
    return found


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    cwd: pathlib.Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args],
        env=offline_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """The command failed with ``code`` and said why in one line, with no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
