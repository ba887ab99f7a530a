#!/usr/bin/env python
"""Django's command-line utility for the example project.

python examples/django_app/manage.py runserver        # then open http://127.0.0.1:8000/
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livevideo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
