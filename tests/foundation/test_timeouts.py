"""Every public timeout is checked before any wait starts: finite seconds, or None."""

from __future__ import annotations

import math

import pytest

from decart_sync import DecartClient, InvalidInputError
from decart_sync._timeouts import limit_timeout, wait_timeout

BAD = [float("inf"), float("-inf"), float("nan"), -0.5, True, "5", [1]]


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_a_wait_refuses_what_is_no_finite_number_of_seconds(value: object) -> None:
    with pytest.raises(InvalidInputError, match="finite number of seconds"):
        wait_timeout(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [*BAD, 0])
def test_a_limit_refuses_zero_too(value: object) -> None:
    with pytest.raises(InvalidInputError, match="timeout must be"):
        limit_timeout(value, 10.0)  # type: ignore[arg-type]


def test_good_values_pass_as_floats() -> None:
    assert wait_timeout(None) is None
    assert wait_timeout(0) == 0.0
    assert limit_timeout(None, 15.0) == 15.0
    assert limit_timeout(2, 15.0) == 2.0
    assert not math.isnan(limit_timeout(1e9, 15.0))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0, -1])
def test_client_and_token_timeouts_are_checked(value: float) -> None:
    with pytest.raises(InvalidInputError, match="timeout"):
        DecartClient(api_key="k" * 20, timeout=value)
    with (
        DecartClient(api_key="k" * 20, base_url="http://127.0.0.1:9") as client,
        pytest.raises(InvalidInputError, match="timeout"),
    ):
        client.tokens.create(timeout=value)
