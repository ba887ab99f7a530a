"""``decart-sync token``: create a short-lived client token and print it as JSON.

Client tokens are what a backend hands to browsers and apps instead of its permanent key
(``client.tokens.create``). The permanent key comes from ``DECART_API_KEY`` and is never
printed; the output is ``{"apiKey": "ek_...", "expiresAt": "..."}`` on one line, for scripts.
"""

from __future__ import annotations

import argparse
import json

from decart_sync.client import DecartClient
from decart_sync.commands._common import api_key_from_env, run_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires-in", type=int, metavar="S", help="lifetime in seconds (the service's default)"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="M",
        help="allow only this model (repeatable)",
    )
    parser.add_argument(
        "--origin",
        action="append",
        dest="origins",
        metavar="O",
        help="allow only this browser origin (repeatable)",
    )
    parser.add_argument(
        "--base-url", metavar="URL", help="REST base URL (default: $DECART_BASE_URL or Decart's)"
    )
    parser.add_argument("--verbose", action="store_true", help="log what the SDK does, to stderr")


def run(args: argparse.Namespace) -> int:
    return run_command("token", lambda: _token(args), verbose=args.verbose)


def _token(args: argparse.Namespace) -> int:
    with DecartClient(api_key=api_key_from_env(), base_url=args.base_url) as client:
        token = client.tokens.create(
            expires_in=args.expires_in, allowed_models=args.models, allowed_origins=args.origins
        )
    print(json.dumps({"apiKey": token.api_key, "expiresAt": token.expires_at}), flush=True)
    return 0
