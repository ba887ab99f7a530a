"""The ``decart-sync`` subcommands that drive the SDK: ``demo``, ``run`` and ``token``.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` for the dispatcher in
:mod:`decart_sync.cli`; ``demo`` and ``run`` share their session handling in ``_live``.
"""
