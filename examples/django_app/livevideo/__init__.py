"""A small Django project that shows a live, transformed video stream (see README.md)."""
