"""The WSGI entry point (``runserver``, gunicorn): video streams use a plain iterator."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livevideo.settings")
application = get_wsgi_application()
