"""Secret redaction for every log line and error message the SDK produces.

Two nets, because either alone misses something: known secrets (every API key or client token the
SDK is handed is registered here) are replaced wherever they appear, and anything shaped like a
secret (``api_key=...`` in a URL, an ``X-API-KEY`` header, an ``ek_`` client token) is masked even
if it was never registered.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

# A value worth masking has a letter or digit in it: "api_key=..." or "api_key=***" in the SDK's
# own help texts are words to keep, not secrets.
_VALUE = r"(?=[^&\s'\"(),}]*[A-Za-z0-9])[^&\s'\"(),}]+"
_PATTERNS = (
    # api_key=... / apiKey=... / token=... in query strings and key=value text.
    re.compile(r"(?i)((?:api[_-]?key|token|access_token)=)" + _VALUE),
    # "apiKey": "..." in JSON, X-API-KEY: ... in headers.
    re.compile(r"(?i)(\"?(?:api[_-]?key|x-api-key)\"?\s*[:=]\s*\"?)" + _VALUE),
    # Client tokens handed out by the service.
    re.compile(r"()\bek_[A-Za-z0-9_\-]{4,}"),
)

_known: set[str] = set()
_known_lock = threading.Lock()
# Secrets shorter than this are too likely to match ordinary text to be replaced by value.
_MIN_SECRET_LENGTH = 6


def register_secret(secret: str | None) -> None:
    """Remember a secret so that it is masked wherever it later appears."""
    if secret and len(secret) >= _MIN_SECRET_LENGTH:
        with _known_lock:
            _known.add(secret)


def redact(text: str) -> str:
    """Return ``text`` with every known or secret-shaped value replaced by ``***``."""
    if not text:
        return text
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class SecretText(str):
    """A string that holds a secret (an API key, or a URL carrying one): it is the text itself
    everywhere a string is used, but its ``repr`` is redacted. Reprs are what leak: an attrs
    value's repr, a traceback rendered with its local variables, a debugger's view.

    Derived strings (``+``, ``.strip()``, formatting) are plain ``str`` again; wrap each value
    the SDK keeps."""

    __slots__ = ()

    def __repr__(self) -> str:
        text = str.__str__(self)
        cleaned = redact(text)
        # Nothing found to mask means the whole text is the secret (a bare key).
        return repr(cleaned) if cleaned != text else repr(MASK)


def mask(secret: str | None) -> str:
    """A display form of a secret for reprs: never the value, only whether there is one."""
    return "None" if secret is None else "'***'"


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """The logger for an SDK module, with redaction attached.

    A logger's filters only see records logged on that very logger, not ones propagated from its
    children, so every SDK module's logger gets the filter, not just the ``decart_sync`` root.
    """
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    root = logging.getLogger("decart_sync")
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    return logger
