"""Settings of the example project: no database, one app, and where to find Decart."""

import os
import pathlib

# Fine for an example on your machine; set a real secret (and DEBUG off) anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-key-for-the-local-example-only")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "livevideo.urls"
# The page, examples/templates/live_page.html, is shared with the Flask example.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [pathlib.Path(__file__).resolve().parents[2] / "templates"],
    }
]
WSGI_APPLICATION = "livevideo.wsgi.application"
ASGI_APPLICATION = "livevideo.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Decart. With no API key, the app starts a local emulator in its own process on first use.
DECART_API_KEY = os.environ.get("DECART_API_KEY")
DECART_BASE_URL = os.environ.get("DECART_BASE_URL")
DECART_REALTIME_BASE_URL = os.environ.get("DECART_REALTIME_BASE_URL")
DECART_MODEL = "lucy-2.1"
DECART_PROMPT = "noir"
