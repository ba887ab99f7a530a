from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """A small pool standing in for the SDK's media executor."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-media")
    yield pool
    pool.shutdown(wait=True)
