"""What several test folders share, one idea a module: pictures to send (``pictures``), what
SDK output decodes to (``decoding``), sessions bound to an emulator (``sessions``), waiting in
a coroutine (``waiting``), the environment of an offline subprocess (``processes``), a
LiveKit track read as pictures (``livekit_video``) and headless Chromium (``chromium``).

``tests/`` is on ``sys.path`` (pytest puts the root conftest's folder there; the LiveKit drivers
insert it themselves), so tests import ``from _support.pictures import picture``. This file
imports nothing: the driver of Decart's official LiveKit client imports ``pictures``,
``waiting`` and ``livekit_video`` in a side venv that holds only numpy and the client. Helpers
that only one folder needs stay in that folder (``_sink_helpers``, ``_source_helpers``,
``_cli_helpers``, ``_example_helpers``, ...). Waiting from a test's thread is the SDK's own
``decart_sync.testing.wait_until``.
"""
