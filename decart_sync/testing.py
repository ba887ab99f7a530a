"""pytest plugin: a ``decart_emulator`` fixture (filled in by the emulator work)."""
