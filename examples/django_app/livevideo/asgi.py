"""The ASGI entry point (uvicorn, daphne): video streams use an async iterator, so a viewer
waiting for its next frame holds no thread."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livevideo.settings")
application = get_asgi_application()
