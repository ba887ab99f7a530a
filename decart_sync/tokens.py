"""Client tokens: short-lived keys a backend hands to browsers and apps (``client.tokens``).

``POST {base_url}/v1/client/tokens`` with the permanent key in ``X-API-KEY`` and a JSON body of
only the fields the caller set (protocol section 6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import requests

from decart_sync._protocol import TOKENS_PATH, ProtocolViolation, TokenRequest, parse_json
from decart_sync._redact import get_logger, mask, redact, register_secret
from decart_sync._timeouts import limit_timeout
from decart_sync.errors import InvalidInputError, TokenCreateError

if TYPE_CHECKING:
    from decart_sync.client import DecartClient

__all__ = ["CreateTokenResponse", "TokensClient"]

_log = get_logger(__name__)


@attrs.frozen
class CreateTokenResponse:
    """A created client token. ``api_key`` is used exactly like an API key, until
    ``expires_at`` (ISO-8601); ``token`` is the same token as a signed JWT, with the same scope
    and expiry (what browser clients use). ``permissions`` holds only the restrictions that were
    set (``models``, ``origins``), and is None when there are none."""

    api_key: str = attrs.field(repr=mask)
    expires_at: str
    permissions: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None
    token: str | None = attrs.field(default=None, repr=mask)


def _as_list(value: Sequence[str] | None) -> object:
    # A str is a sequence too; left as it is, the schema refuses it as "not a list".
    return value if value is None or isinstance(value, str) else list(value)


def _as_dict(value: Mapping[str, Any] | None) -> object:
    return dict(value) if isinstance(value, Mapping) else value


def build_token_request(
    *,
    expires_in: int | None,
    allowed_models: Sequence[str] | None,
    allowed_origins: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    constraints: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body: only the fields that were set, checked by the protocol's own rules (the
    emulator checks what it receives by the same ones)."""
    given = {
        "expiresIn": expires_in,
        "allowedModels": _as_list(allowed_models),
        "allowedOrigins": _as_list(allowed_origins),
        "metadata": _as_dict(metadata),
        "constraints": _as_dict(constraints),
    }
    try:
        request = TokenRequest.parse({k: v for k, v in given.items() if v is not None})
    except ProtocolViolation as exc:
        raise InvalidInputError(f"tokens.create(): {_python_names(str(exc))}") from None
    return request.body()


def _python_names(text: str) -> str:
    """The schema's message, with the wire's field names as the caller spelled them."""
    for wire, python in (
        ("expiresIn", "expires_in"),
        ("allowedModels", "allowed_models"),
        ("allowedOrigins", "allowed_origins"),
    ):
        text = text.replace(wire, python)
    return text


class TokensClient:
    """``client.tokens``: creates client tokens with the client's permanent key."""

    def __init__(self, client: DecartClient, http: requests.Session) -> None:
        self._client = client
        self._http = http  # the client's connection pool

    def create(
        self,
        *,
        expires_in: int | None = None,
        allowed_models: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        constraints: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CreateTokenResponse:
        """Create a client token. Raises :class:`TokenCreateError` (with ``.status``) when the
        service refuses, and :class:`InvalidInputError` for bad arguments."""
        body = build_token_request(
            expires_in=expires_in,
            allowed_models=allowed_models,
            allowed_origins=allowed_origins,
            metadata=metadata,
            constraints=constraints,
        )
        client = self._client
        url = client.base_url + TOKENS_PATH
        try:
            response = self._http.post(
                url,
                json=body,
                headers={"X-API-KEY": client.api_key, "User-Agent": client.user_agent},
                timeout=limit_timeout(timeout, client.timeout),
            )
        except requests.Timeout:
            raise TokenCreateError(f"token request to {url} timed out") from None
        except requests.RequestException as exc:
            raise TokenCreateError(f"token request to {url} failed: {redact(str(exc))}") from None
        if not 200 <= response.status_code < 300:
            text = response.text[:2000]
            raise TokenCreateError(
                f"failed to create client token: HTTP {response.status_code}: {redact(text)}",
                status=response.status_code,
                body=text,
            )
        try:
            data = parse_json(response.content)
            jwt = data.get("token")
            token = CreateTokenResponse(
                api_key=str(data["apiKey"]),
                expires_at=str(data["expiresAt"]),
                permissions=data.get("permissions"),
                constraints=data.get("constraints"),
                token=str(jwt) if jwt is not None else None,
            )
        except (ProtocolViolation, KeyError, TypeError):
            raise TokenCreateError(
                "failed to create client token: the response is not the expected JSON "
                "(apiKey, expiresAt)",
                status=response.status_code,
                body=response.text[:2000],
            ) from None
        register_secret(token.api_key)
        register_secret(token.token)
        _log.debug("created client token expiring at %s", token.expires_at)
        return token
