"""Secrets never reach logs, reprs or error texts."""

from __future__ import annotations

import logging

import pytest

from decart_sync._redact import get_logger, redact, register_secret


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("wss://h/v1/stream?api_key=abc123xyz&model=m", "abc123xyz"),
        ('{"apiKey": "ek_abcdefgh", "expiresAt": "t"}', "ek_abcdefgh"),
        ("X-API-KEY: sk-0000-1111", "sk-0000-1111"),
        ("token ek_Zy9-abcd used", "ek_Zy9-abcd"),
    ],
)
def test_secret_shaped_values_are_masked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert "***" in cleaned


def test_registered_secrets_are_masked_anywhere() -> None:
    register_secret("plain-looking-secret-value")
    assert redact("oops plain-looking-secret-value leaked") == "oops *** leaked"


def test_every_sdk_logger_redacts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = get_logger("decart_sync.some.module")
    log.info("connecting to %s", "wss://h/v1/stream?api_key=topsecret99&model=m")
    try:
        raise RuntimeError("failed with api_key=topsecret99")
    except RuntimeError:
        log.exception("boom")
    assert "topsecret99" not in caplog.text
    assert "model=m" in caplog.text
    assert "RuntimeError" in caplog.text


def test_logger_is_silent_by_default() -> None:
    import decart_sync  # noqa: F401 - importing installs the NullHandler

    handlers = logging.getLogger("decart_sync").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


@pytest.mark.parametrize(
    "text",
    [
        "no API key: pass DecartClient(api_key=...) or set DECART_API_KEY",
        "repr: DecartClient(api_key='***', base_url='http://x')",
        "use token=*** here",
    ],
)
def test_the_sdks_own_words_are_not_redacted(text: str) -> None:
    assert redact(text) == text


def test_the_missing_key_help_reads_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from decart_sync import DecartClient, InvalidAPIKeyError

    monkeypatch.delenv("DECART_API_KEY", raising=False)
    with pytest.raises(InvalidAPIKeyError) as info:
        DecartClient()
    assert "DecartClient(api_key=...) or set DECART_API_KEY" in str(info.value)


def test_secret_text_is_itself_but_its_repr_is_redacted() -> None:
    from decart_sync._redact import SecretText

    url = SecretText("wss://h/v1/stream?api_key=zz9secret&model=m")
    assert url == "wss://h/v1/stream?api_key=zz9secret&model=m"
    assert f"{url}".endswith("zz9secret&model=m")
    assert "zz9secret" not in repr(url) and "model=m" in repr(url)
    assert repr(SecretText("bare-key-never-registered")) == "'***'"
