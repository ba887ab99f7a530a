"""DecartClient and client tokens, against a real local HTTP server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from decart_sync import (
    DecartClient,
    InvalidAPIKeyError,
    InvalidBaseURLError,
    InvalidInputError,
    SessionClosedError,
    TokenCreateError,
)
from decart_sync._redact import redact

SECRET = "sk-live-very-secret-key-123"


class TokenServer:
    """A tiny REST server that records requests and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.reply: Any = {"apiKey": "ek_shortlived_abcdef", "expiresAt": "2026-11-24T12:00:00Z"}
        self.release = threading.Event()
        self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length) or b"null"),
                    }
                )
                outer.release.wait(10)
                payload = (
                    outer.reply if isinstance(outer.reply, str) else json.dumps(outer.reply)
                ).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="test-token-server"
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[TokenServer]:
    srv = TokenServer()
    yield srv
    srv.close()


@pytest.fixture
def client(server: TokenServer) -> Iterator[DecartClient]:
    with DecartClient(api_key=SECRET, base_url=server.url, integration="tests") as c:
        yield c


def test_key_from_environment_and_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_API_KEY", "env-key-0001")
    assert DecartClient().api_key == "env-key-0001"
    monkeypatch.delenv("DECART_API_KEY")
    with pytest.raises(InvalidAPIKeyError, match="DECART_API_KEY"):
        DecartClient()


def test_base_urls_defaults_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECART_BASE_URL", raising=False)
    monkeypatch.delenv("DECART_REALTIME_BASE_URL", raising=False)
    c = DecartClient(api_key=SECRET)
    assert (c.base_url, c.realtime_base_url) == ("https://api.decart.ai", "wss://api.decart.ai")
    monkeypatch.setenv("DECART_BASE_URL", "http://127.0.0.1:8765/")
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", "http://127.0.0.1:8765")
    c = DecartClient(api_key=SECRET)
    assert (c.base_url, c.realtime_base_url) == ("http://127.0.0.1:8765", "ws://127.0.0.1:8765")
    with pytest.raises(InvalidBaseURLError):
        DecartClient(api_key=SECRET, base_url="api.decart.ai")


def test_a_rest_base_of_ones_own_serves_realtime_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """An emulator or a proxy serves both on one origin; only Decart's REST host maps to
    Decart's realtime host. The same rule for the client and the seed's classmethods."""
    monkeypatch.delenv("DECART_BASE_URL", raising=False)
    monkeypatch.delenv("DECART_REALTIME_BASE_URL", raising=False)
    own = DecartClient(api_key=SECRET, base_url="http://127.0.0.1:8765")
    assert own.realtime_base_url == "ws://127.0.0.1:8765"
    decart = DecartClient(api_key=SECRET, base_url="https://api.decart.ai")
    assert decart.realtime_base_url == "wss://api.decart.ai"
    both = DecartClient(api_key=SECRET, base_url="http://a:1", realtime_base_url="wss://b:2")
    assert both.realtime_base_url == "wss://b:2"


def test_repr_never_shows_the_key(client: DecartClient) -> None:
    assert SECRET not in repr(client)
    assert "***" in repr(client)


def test_closed_client_refuses_work(server: TokenServer) -> None:
    c = DecartClient(api_key=SECRET, base_url=server.url)
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(SessionClosedError):
        _ = c.realtime


def test_token_request_follows_the_rest_contract(client: DecartClient, server: TokenServer) -> None:
    token = client.tokens.create(
        expires_in=300,
        allowed_models=["lucy-2.1"],
        metadata={"user": "u1"},
        constraints={"realtime": {"maxSessionDuration": 120}},
    )
    assert token.api_key == "ek_shortlived_abcdef"
    assert token.expires_at == "2026-11-24T12:00:00Z"
    assert "ek_shortlived" not in repr(token)
    (req,) = server.requests
    assert req["path"] == "/v1/client/tokens"
    assert req["headers"]["X-API-KEY"] == SECRET
    assert req["headers"]["User-Agent"].endswith("lang/py tests")
    assert req["body"] == {
        "expiresIn": 300,
        "allowedModels": ["lucy-2.1"],
        "metadata": {"user": "u1"},
        "constraints": {"realtime": {"maxSessionDuration": 120}},
    }


def test_the_token_response_carries_the_jwt_form_never_shown(
    client: DecartClient, server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
    server.reply = {
        "apiKey": "ek_shortlived_abcdef",
        "token": jwt,
        "expiresAt": "2026-11-24T12:00:00Z",
        "permissions": {"origins": ["https://app.example"]},
    }
    token = client.tokens.create(allowed_origins=["https://app.example"])
    assert token.token == jwt
    assert token.permissions == {"origins": ["https://app.example"]}
    assert jwt not in repr(token) and "ek_shortlived" not in repr(token)
    # Registered as a secret: redacted wherever it would be logged.
    assert redact(f"token {jwt} in a message") == "token *** in a message"
    assert jwt not in caplog.text


def test_a_response_without_the_jwt_or_permissions_still_parses(
    client: DecartClient, server: TokenServer
) -> None:
    token = client.tokens.create()
    assert (token.token, token.permissions, token.constraints) == (None, None, None)


def test_token_request_sends_only_fields_set(client: DecartClient, server: TokenServer) -> None:
    client.tokens.create()
    assert server.requests[0]["body"] == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires_in": 0},
        {"expires_in": 3601},
        {"expires_in": True},
        {"allowed_models": "lucy-2.1"},
        {"allowed_models": [f"m{i}" for i in range(21)]},
        {"metadata": ["x"]},
    ],
)
def test_token_arguments_are_validated_before_sending(
    client: DecartClient, server: TokenServer, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        client.tokens.create(**kwargs)
    assert server.requests == []


def test_http_errors_carry_status_without_the_key(
    client: DecartClient, server: TokenServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.status = 401
    server.reply = {"error": f"Invalid API key {SECRET}"}
    with pytest.raises(TokenCreateError) as info:
        client.tokens.create()
    assert info.value.status == 401
    assert "401" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.body
    assert SECRET not in caplog.text


def test_malformed_success_response_is_a_token_error(
    client: DecartClient, server: TokenServer
) -> None:
    server.reply = "not json"
    with pytest.raises(TokenCreateError, match="expected JSON") as info:
        client.tokens.create()
    assert info.value.status == 200


def test_token_request_timeout_is_bounded(client: DecartClient, server: TokenServer) -> None:
    server.release.clear()
    with pytest.raises(TokenCreateError, match="timed out"):
        client.tokens.create(timeout=0.3)
    server.release.set()


def test_a_response_nested_too_deep_is_a_token_error(
    client: DecartClient, server: TokenServer
) -> None:
    server.reply = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it
    with pytest.raises(TokenCreateError, match="not the expected JSON"):
        client.tokens.create()
