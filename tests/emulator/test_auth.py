"""Who gets in: permanent keys, models and their options, client tokens (REST contract, JWT form,
expiry, models, origins, session limits, CORS), capacity and the per-key concurrency limit, and
the subscribe endpoint's checks."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rawclient import MediaLoop, RawClient, http

from decart_sync._protocol import (
    CAPACITY_ERROR,
    CONCURRENCY_LIMIT_ERROR,
    TOKENS_PATH,
    error_from_server,
    is_permanent_error,
)
from decart_sync.emulator import DEFAULT_API_KEY, Emulator
from decart_sync.errors import ModelNotFoundError, ServerAtCapacityError
from decart_sync.models import realtime_model_names
from decart_sync.testing import wait_until

Connect = Callable[..., RawClient]


def _create_token(emulator: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = http("POST", emulator.url + TOKENS_PATH, body, {"X-API-KEY": emulator.api_key})
    assert status == 200, reply
    return reply  # type: ignore[no-any-return]


def _rejected(client: RawClient) -> tuple[str, int | None]:
    """The error text a rejected connection got, and its close code."""
    text = client.expect("error")["error"]
    return text, client.wait_closed().code


# --------------------------------------------------------------------------- permanent keys


def test_the_default_key_opens_a_session(emulator: Emulator, connect: Connect) -> None:
    assert emulator.api_key == DEFAULT_API_KEY == "decart-emulator-key"
    assert connect(api_key=DEFAULT_API_KEY).set_prompt("hello")["success"]


@pytest.mark.parametrize("key", ["wrong-key", None, ""], ids=["unknown", "missing", "empty"])
def test_a_bad_key_is_rejected_for_good(
    emulator: Emulator, connect: Connect, key: str | None
) -> None:
    text, code = _rejected(connect(api_key=key))
    assert text.startswith("Invalid API key")
    assert is_permanent_error(text)
    assert code == 1008
    assert emulator.sessions() == []


def test_an_emulator_started_with_its_own_keys_accepts_only_those(media: MediaLoop) -> None:
    with Emulator(api_keys=("key-one", "key-two")) as emulator:
        assert emulator.api_key == "key-one"
        for key in ("key-one", "key-two"):
            with RawClient(RawClient.producer_url(emulator.realtime_url, key), media) as client:
                assert client.set_prompt("hi")["success"]
        url = RawClient.producer_url(emulator.realtime_url, DEFAULT_API_KEY)
        with RawClient(url, media) as client:
            assert _rejected(client) == ("Invalid API key", 1008)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("model", "expected"),
    [("lucy-9000", "Model not found: 'lucy-9000'"), (None, "Model not found: no 'model'")],
)
def test_an_unknown_or_missing_model_is_rejected(
    connect: Connect, model: str | None, expected: str
) -> None:
    text, code = _rejected(connect(model=model))
    assert text.startswith(expected)
    assert "model" in text.lower() and "not found" in text.lower()
    assert code == 1008


@pytest.mark.parametrize("model", realtime_model_names())
def test_every_realtime_model_opens(emulator: Emulator, connect: Connect, model: str) -> None:
    assert connect(model=model).set_prompt("hi")["success"]
    assert emulator.sessions()[0].model == model


@pytest.mark.parametrize("model", ["lucy-2", "lucy-2.1-vton", "mirage_v2"])
def test_retired_models_are_not_found(connect: Connect, model: str) -> None:
    text, code = _rejected(connect(model=model))
    assert text == f"Model not found: {model!r}"
    assert isinstance(error_from_server(text), ModelNotFoundError)
    assert code == 1008


@pytest.mark.parametrize("model", ["lucy-2.5", "lucy-2.6", "lucy-latest", "lucy-vton-3.6"])
def test_fast_speed_is_accepted_where_the_model_has_it(
    emulator: Emulator, connect: Connect, model: str
) -> None:
    assert connect(model=model, speed="fast").set_prompt("hi")["success"]


@pytest.mark.parametrize(
    ("model", "speed", "expected"),
    [
        ("lucy-2.1", "fast", "Speed 'fast' is not allowed for model 'lucy-2.1': it has one speed"),
        ("lucy-restyle-2", "fast", "Speed 'fast' is not allowed for model 'lucy-restyle-2'"),
        ("lucy-2.5", "slow", "Speed 'slow' is not allowed for model 'lucy-2.5': use fast"),
    ],
)
def test_a_speed_the_model_lacks_is_rejected(
    connect: Connect, model: str, speed: str, expected: str
) -> None:
    text, code = _rejected(connect(model=model, speed=speed))
    assert text.startswith(expected)
    assert is_permanent_error(text) and code == 1008


def test_resolution_must_be_720p_or_1080p(connect: Connect) -> None:
    assert connect(resolution="720p").set_prompt("hi")["success"]
    assert connect(resolution="1080p").set_prompt("hi")["success"]
    text, code = _rejected(connect(resolution="4k"))
    assert "'4k'" in text and is_permanent_error(text)
    assert code == 1008


# --------------------------------------------------------------------------- client tokens


def test_a_token_is_created_with_the_rest_contract(emulator: Emulator, connect: Connect) -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    reply = _create_token(
        emulator,
        {
            "expiresIn": 120,
            "allowedModels": ["lucy-2.1"],
            "metadata": {"user": "ada"},
            "constraints": {"realtime": {"maxSessionDuration": 300}},
        },
    )
    assert reply["apiKey"].startswith("ek_") and len(reply["apiKey"]) > 20
    expires = datetime.datetime.fromisoformat(reply["expiresAt"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None
    assert 110 <= (expires - before).total_seconds() <= 130
    # Only the restriction that was set, as a list (official clients reject a null one).
    assert reply["permissions"] == {"models": ["lucy-2.1"]}
    assert reply["constraints"] == {"realtime": {"maxSessionDuration": 300}}
    assert connect(api_key=reply["apiKey"]).set_prompt("hi")["success"]


def _jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def decode(part: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]

    header, payload, signature = token.split(".")
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == 32
    return decode(header), decode(payload)


def test_the_token_comes_as_a_jwt_with_the_same_scope_and_expiry(
    emulator: Emulator, connect: Connect
) -> None:
    reply = _create_token(
        emulator,
        {"expiresIn": 300, "allowedModels": ["lucy-2.5"], "allowedOrigins": ["https://a.example"]},
    )
    assert reply["permissions"] == {"models": ["lucy-2.5"], "origins": ["https://a.example"]}
    header, claims = _jwt_parts(reply["token"])
    assert header == {"alg": "HS256", "typ": "JWT"}
    expires = datetime.datetime.fromisoformat(reply["expiresAt"].replace("Z", "+00:00"))
    assert claims["exp"] == int(expires.timestamp())
    assert (claims["models"], claims["origins"]) == (["lucy-2.5"], ["https://a.example"])

    # The JWT opens sessions like the key does, within the same scope.
    jwt = reply["token"]
    assert connect(api_key=jwt, model="lucy-2.5", origin="https://a.example").set_prompt("ok")[
        "success"
    ]
    assert _rejected(connect(api_key=jwt, model="lucy-2.1", origin="https://a.example"))[
        0
    ].startswith("Permission denied: model")
    forged = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
    assert _rejected(connect(api_key=forged, model="lucy-2.5")) == ("Invalid API key", 1008)


def test_an_unrestricted_token_has_no_permissions(emulator: Emulator) -> None:
    reply = _create_token(emulator, {"metadata": {"user": "ada"}})
    assert set(reply) == {"apiKey", "token", "expiresAt"}


def test_an_empty_body_gets_the_default_lifetime(emulator: Emulator) -> None:
    before = datetime.datetime.now(datetime.timezone.utc)
    status, reply = http(
        "POST", emulator.url + TOKENS_PATH, headers={"X-API-KEY": emulator.api_key}, raw=b""
    )
    assert status == 200
    expires = datetime.datetime.fromisoformat(reply["expiresAt"].replace("Z", "+00:00"))
    assert 55 <= (expires - before).total_seconds() <= 65
    assert "constraints" not in reply


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"expiresIn": 0}, "expiresIn"),
        ({"expiresIn": 3601}, "expiresIn"),
        ({"expiresIn": "60"}, "expiresIn"),
        ({"expiresIn": True}, "expiresIn"),
        ({"expiresIn": 1.5}, "expiresIn"),
        ({"allowedModels": "lucy-2.1"}, "allowedModels"),
        ({"allowedModels": [1]}, "allowedModels"),
        ({"allowedModels": ["m"] * 21}, "at most 20"),
        ({"allowedOrigins": ["https://a.example"] * 21}, "at most 20"),
        ({"allowedOrigins": [""]}, "allowedOrigins"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"constraints": "short"}, "constraints"),
        ({"constraints": {"realtime": 5}}, "constraints.realtime"),
        ({"constraints": {"realtime": {"maxSessionDuration": -1}}}, "maxSessionDuration"),
        ({"constraints": {"realtime": {"maxSessionDuration": 1.5}}}, "integer"),
        ({"expires_in": 60}, "unknown field 'expires_in'"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_token_bodies_get_400(emulator: Emulator, body: Any, expected: str) -> None:
    status, reply = http("POST", emulator.url + TOKENS_PATH, body, {"X-API-KEY": emulator.api_key})
    assert status == 400
    assert expected in reply["error"]


def test_a_body_that_is_not_json_gets_400(emulator: Emulator) -> None:
    status, reply = http(
        "POST", emulator.url + TOKENS_PATH, headers={"X-API-KEY": emulator.api_key}, raw=b"{nope"
    )
    assert (status, reply) == (400, {"error": "body is not valid JSON"})


def test_creating_a_token_needs_a_permanent_key(emulator: Emulator) -> None:
    for headers in ({}, {"X-API-KEY": "wrong"}):
        status, reply = http("POST", emulator.url + TOKENS_PATH, {}, headers)
        assert (status, reply) == (401, {"error": "Invalid API key"})


def test_a_client_token_cannot_mint_tokens(emulator: Emulator) -> None:
    reply = _create_token(emulator, {})
    for key in (reply["apiKey"], reply["token"]):
        status, error = http("POST", emulator.url + TOKENS_PATH, {}, {"X-API-KEY": key})
        assert status == 403
        assert error["error"].startswith("Permission denied")


def test_the_rest_endpoints_answer_cross_origin_requests(emulator: Emulator) -> None:
    import urllib.request

    page = "https://page.example"
    preflight = urllib.request.Request(
        emulator.url + TOKENS_PATH,
        method="OPTIONS",
        headers={
            "Origin": page,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    with urllib.request.urlopen(preflight, timeout=10) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == page
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "x-api-key" in response.headers["Access-Control-Allow-Headers"].lower()

    request = urllib.request.Request(
        emulator.url + TOKENS_PATH,
        data=b"{}",
        method="POST",
        headers={"Origin": page, "Content-Type": "application/json", "X-API-KEY": emulator.api_key},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Access-Control-Allow-Origin"] == page
    refused = urllib.request.Request(
        emulator.url + TOKENS_PATH, data=b"{}", method="POST", headers={"Origin": page}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(refused, timeout=10)
    assert info.value.code == 401  # still authorised by key; the browser may read why
    assert info.value.headers["Access-Control-Allow-Origin"] == page
    with urllib.request.urlopen(
        urllib.request.Request(emulator.url + "/health", headers={"Origin": page}), timeout=10
    ) as response:
        assert response.headers["Access-Control-Allow-Origin"] == page


def test_an_expired_token_is_refused_at_connect(emulator: Emulator, connect: Connect) -> None:
    reply = _create_token(emulator, {"expiresIn": 1})
    expires = datetime.datetime.fromisoformat(reply["expiresAt"].replace("Z", "+00:00"))
    assert connect(api_key=reply["apiKey"]).set_prompt("in time")["success"]
    wait_until(
        lambda: datetime.datetime.now(datetime.timezone.utc) > expires, 10, "the token to expire"
    )
    text, code = _rejected(connect(api_key=reply["apiKey"]))
    assert text == "Unauthorized: client token expired"
    assert is_permanent_error(text) and code == 1008


def test_a_token_opens_only_its_allowed_models(emulator: Emulator, connect: Connect) -> None:
    token = emulator.create_token(allowed_models=["lucy-restyle-2"])
    text, code = _rejected(connect(api_key=token, model="lucy-2.1"))
    assert text == "Permission denied: model 'lucy-2.1' is not allowed for this token"
    assert is_permanent_error(text) and code == 1008
    assert connect(api_key=token, model="lucy-restyle-2").set_prompt("ok")["success"]


def test_a_token_checks_the_websocket_origin(connect: Connect, emulator: Emulator) -> None:
    token = emulator.create_token(allowed_origins=["https://app.example"])
    for origin in (None, "https://evil.example"):
        text, code = _rejected(connect(api_key=token, origin=origin))
        assert text.startswith("Permission denied: origin")
        assert "not allowed" in text and code == 1008
    assert connect(api_key=token, origin="https://app.example").set_prompt("ok")["success"]


def test_a_session_ends_at_the_token_max_session_duration(
    emulator: Emulator, connect: Connect
) -> None:
    token = emulator.create_token(constraints={"realtime": {"maxSessionDuration": 1}})
    client = connect(api_key=token)
    client.set_prompt("short one")
    client.negotiate()
    ended = client.expect("generation_ended", timeout=10)
    assert ended["reason"] == "timeout"
    assert isinstance(ended["seconds"], int) and 0 <= ended["seconds"] <= 1
    assert client.wait_closed().code == 1000
    emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)


def test_create_token_refuses_what_the_endpoint_refuses(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="expiresIn"):
        emulator.create_token(expires_in=0)


# --------------------------------------------------------------------------- capacity


@pytest.fixture
def small_emulator() -> Iterator[Emulator]:
    with Emulator(max_sessions=1) as emulator:
        yield emulator


def test_capacity_rejects_at_once_and_frees_up(small_emulator: Emulator, media: MediaLoop) -> None:
    url = RawClient.producer_url(small_emulator.realtime_url, small_emulator.api_key)
    with RawClient(url, media) as first:
        assert first.set_prompt("first")["success"]
        started = time.monotonic()
        with RawClient(url, media) as second:
            text, code = _rejected(second)
        assert time.monotonic() - started < 5
        assert (text, code) == (CAPACITY_ERROR, 1013)
        assert len(small_emulator.sessions()) == 1
    small_emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
    with RawClient(url, media) as third:
        assert third.set_prompt("third")["success"]


def test_the_per_key_limit_rejects_the_next_session_of_that_key_only(media: MediaLoop) -> None:
    with Emulator(api_keys=("org-one", "org-two"), max_sessions_per_key=1) as emulator:

        def open_client(key: str) -> RawClient:
            return RawClient(RawClient.producer_url(emulator.realtime_url, key), media)

        # A client token's session counts against the key that minted it.
        token = emulator.create_token()  # minted by the first key, org-one
        with open_client(token) as first, open_client("org-two") as other:
            assert first.set_prompt("first")["success"]
            assert other.set_prompt("other org")["success"]
            with open_client("org-one") as second:
                text, code = _rejected(second)
            assert (text, code) == (CONCURRENCY_LIMIT_ERROR, 1013)
            assert not is_permanent_error(text)
            assert isinstance(error_from_server(text), ServerAtCapacityError)
        emulator.wait_for(lambda emu: emu.sessions() == [], timeout=10)
        with open_client("org-one") as third:
            assert third.set_prompt("third")["success"]


def test_every_error_sent_is_logged_at_info(
    emulator: Emulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="decart_sync.emulator")
    client = connect(api_key="wrong-key-that-must-not-be-logged")
    _rejected(client)
    producer = connect()
    producer.send({"type": "dance"})
    producer.expect("error")
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("producer connection from 127.0.0.1" in m and "Invalid API key" in m for m in logged)
    assert any("session " in m and "unknown message type 'dance'" in m for m in logged)
    assert not any("wrong-key-that-must-not-be-logged" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- subscribe


def test_subscribe_checks_session_key_and_server(emulator: Emulator, connect: Connect) -> None:
    producer = connect()
    producer.set_prompt("hi")
    producer.negotiate()
    session = producer.expect("session_id")
    base = emulator.realtime_url

    cases = [
        ({**session, "session_id": "0" * 32}, emulator.api_key, "Invalid session: no session"),
        (session, "wrong-key", "Invalid API key"),
        ({**session, "server_port": emulator.port + 1}, emulator.api_key, "Invalid session"),
    ]
    for target, key, expected in cases:
        text, code = _rejected(connect(url=RawClient.viewer_url(base, target, key)))
        assert text.startswith(expected) and is_permanent_error(text)
        assert code == 1008
    assert emulator.sessions()[0].subscribers == 0


def test_a_viewer_with_a_token_for_another_model_is_refused(
    emulator: Emulator, connect: Connect
) -> None:
    producer = connect(model="lucy-2.1")
    producer.set_prompt("hi")
    producer.negotiate()
    session = producer.expect("session_id")
    token = emulator.create_token(allowed_models=["lucy-restyle-2"])
    viewer = connect(url=RawClient.viewer_url(emulator.realtime_url, session, token))
    text, _ = _rejected(viewer)
    assert text.startswith("Permission denied: model 'lucy-2.1'")


def test_health(emulator: Emulator) -> None:
    status, reply = http("GET", emulator.url + "/health")
    assert status == 200
    assert reply["status"] == "ok" and reply["sessions"] == 0
