"""The ``decart-sync`` command line: one subcommand a job, each in the module that does it."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from decart_sync._version import __version__

# Subcommand name -> module providing ``add_arguments(parser)`` and ``run(args) -> int``.
# Modules are imported only when their subcommand runs, so ``--version`` stays instant and a
# missing optional extra only affects the subcommand that needs it.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("decart_sync.emulator.cli", "run a local Decart-compatible realtime server"),
    "demo": ("decart_sync.commands.demo", "stream a test pattern through a local emulator"),
    "run": ("decart_sync.commands.run", "stream a file, camera or test pattern through a model"),
    "token": ("decart_sync.commands.token", "create a short-lived client token, printed as JSON"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="decart-sync", description="Synchronous SDK for Decart's Realtime API."
    )
    parser.add_argument("--version", action="version", version=f"decart-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args, _ = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    # Re-parse with the subcommand's own arguments attached.
    sub_parser = argparse.ArgumentParser(
        prog=f"decart-sync {args.command}", description=_SUBCOMMANDS[args.command][1]
    )
    module.add_arguments(sub_parser)
    sub_args = sub_parser.parse_args(argv[argv.index(args.command) + 1 :])
    result: int = module.run(sub_args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
