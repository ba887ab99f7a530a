"""The views: the page, the video stream, the controls, status and the token endpoint.

The control views are ordinary sync views calling the blocking SDK; under ASGI, Django runs them
in a worker thread, so they never block the event loop. Only the video stream differs between
the two servers: WSGI needs a plain iterator, ASGI an async one.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from decart_sync import DecartSDKError, InvalidInputError
from livevideo.live import stream

log = logging.getLogger(__name__)


def _sdk_error(error: DecartSDKError) -> JsonResponse:
    # Bad input is the visitor's mistake; anything else is the service's or the network's.
    status = 400 if isinstance(error, InvalidInputError) else 502
    log.warning("request failed: %s", error.message)
    return JsonResponse({"error": error.message}, status=status)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    # The page is examples/templates/live_page.html, shared with the Flask example.
    urls = {name: reverse(name) for name in ("video", "set_prompt", "set_image", "status")}
    context = {"framework": "Django", "urls": urls, "prompt": stream.prompt}
    return render(request, "live_page.html", context)


@require_GET
def video(request: HttpRequest) -> HttpResponse:
    try:
        broadcaster = stream.broadcaster()
    except DecartSDKError as error:
        return _sdk_error(error)
    if isinstance(request, ASGIRequest):
        # Under ASGI, Django consumes the stream on its event loop: an async iterator waits
        # for frames there without tying up a thread per viewer.
        parts = broadcaster.async_viewer()
        return StreamingHttpResponse(parts, content_type=broadcaster.content_type)
    # Under WSGI, the server's thread for this request pulls from a plain iterator.
    return StreamingHttpResponse(broadcaster.viewer(), content_type=broadcaster.content_type)


@require_POST
def set_prompt(request: HttpRequest) -> HttpResponse:
    text = request.POST.get("prompt", "").strip()
    if not text:
        return JsonResponse({"error": "the prompt is empty"}, status=400)
    try:
        stream.set_prompt(text)  # blocks until the server has applied it
    except DecartSDKError as error:
        return _sdk_error(error)
    return redirect("index")  # post/redirect/get: a reload does not post the form again


@require_POST
def set_image(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("image")
    data = upload.read() if upload is not None else b""
    if not data:
        return JsonResponse({"error": "no image uploaded"}, status=400)
    try:
        stream.set_image(data)  # keeps the prompt
    except DecartSDKError as error:
        return _sdk_error(error)
    return redirect("index")


@require_GET
def status(request: HttpRequest) -> JsonResponse:
    # Describes the session without opening one: nobody watching means no session.
    return JsonResponse(stream.status())


# Called by browsers and mobile apps, which hold no CSRF cookie: protect it with your own
# authentication instead (the response is not readable by other sites' pages anyway).
@csrf_exempt
@require_POST
def create_realtime_token(request: HttpRequest) -> JsonResponse:
    """A client token for client-side realtime connections."""
    try:
        token = stream.client().tokens.create(
            expires_in=300, allowed_models=[settings.DECART_MODEL]
        )
    except DecartSDKError as error:
        log.warning("token creation failed: %s", error.message)
        return JsonResponse({"error": "Failed to create client token"}, status=500)
    return JsonResponse({"apiKey": token.api_key, "expiresAt": token.expires_at})
