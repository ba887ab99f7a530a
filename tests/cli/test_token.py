"""``decart-sync token``: a client token for a browser, printed as JSON for scripts."""

from __future__ import annotations

import json

from _cli_helpers import SECRET_KEY, assert_one_line_error, run_cli
from _support.sessions import client_of

from decart_sync.emulator import Emulator
from decart_sync.media import test_pattern


def test_prints_a_working_client_token_as_json(emulator: Emulator) -> None:
    result = run_cli(
        ["token", "--base-url", emulator.url, "--expires-in", "120", "--model", "lucy-2.1"],
        env={"DECART_API_KEY": SECRET_KEY},
    )
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    assert set(token) == {"apiKey", "expiresAt"}
    assert token["apiKey"].startswith("ek_")
    assert token["expiresAt"].endswith("Z")
    assert SECRET_KEY not in result.stdout + result.stderr
    # The token is as good as a key for what it allows: it opens a session.
    with client_of(emulator, api_key=token["apiKey"]) as client:
        session = client.realtime.connect("lucy-2.1", test_pattern(), prompt="x", timeout=20)
        assert session.is_connected()
        session.disconnect()


def test_base_url_from_the_environment(emulator: Emulator) -> None:
    result = run_cli(
        ["token", "--origin", "https://app.example"],
        env={"DECART_API_KEY": SECRET_KEY, "DECART_BASE_URL": emulator.url},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["apiKey"].startswith("ek_")


def test_missing_key_is_a_usage_error() -> None:
    assert_one_line_error(run_cli(["token"]), 2, "DECART_API_KEY")


def test_a_refused_request_says_why_without_the_key(emulator: Emulator) -> None:
    wrong = "sk-not-the-right-key-987654321"
    result = run_cli(["token", "--base-url", emulator.url], env={"DECART_API_KEY": wrong})
    assert_one_line_error(result, 1, "HTTP 401")
    assert wrong not in result.stderr + result.stdout
    result = run_cli(
        ["token", "--base-url", emulator.url, "--expires-in", "999999"],
        env={"DECART_API_KEY": SECRET_KEY},
    )
    assert_one_line_error(result, 2, "expires_in")
