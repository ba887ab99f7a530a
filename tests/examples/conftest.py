"""The examples folder on sys.path for the example tests; their ``emulator`` and ``client`` are
the suite's (tests/conftest.py)."""

from __future__ import annotations

import sys

from _example_helpers import EXAMPLES

# flask_app and the Django project are imported by the tests as a user's code would be.
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(EXAMPLES / "django_app"))
