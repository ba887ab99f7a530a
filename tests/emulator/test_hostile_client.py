"""A client that sends what no parser should choke on: the emulator answers as the service does
(an `error` message, or HTTP 400), keeps the session, and never fails with a 500."""

from __future__ import annotations

import json

import requests
import websocket

from decart_sync._protocol import TOKENS_PATH
from decart_sync.emulator import Emulator

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_message_gets_an_error_and_the_session_goes_on(
    emulator: Emulator,
) -> None:
    url = f"{emulator.realtime_url}/v1/stream?api_key={emulator.api_key}&model=lucy-2.1"
    ws = websocket.create_connection(url, timeout=10)
    try:
        ws.send(DEEP)
        reply = json.loads(ws.recv())
        assert reply["type"] == "error" and "not valid JSON" in reply["error"]
        ws.send(json.dumps({"type": "prompt", "prompt": "noir", "enhance_prompt": True}))
        ack = json.loads(ws.recv())
        assert (ack["type"], ack["success"]) == ("prompt_ack", True)
    finally:
        ws.close()


def test_a_deeply_nested_token_request_is_a_bad_request(emulator: Emulator) -> None:
    response = requests.post(
        emulator.url + TOKENS_PATH,
        data=DEEP,
        headers={"X-API-KEY": emulator.api_key, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
