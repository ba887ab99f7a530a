"""The environment of a subprocess the tests start (the CLI, an example, an emulator shell)."""

from __future__ import annotations

import os


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``DECART_*`` setting, plus ``extra``: the child
    sees no Decart key or URL from the developer's shell, so it reaches only what the test gives
    it. Unbuffered, so that a test can read its output line by line as it comes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECART_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
