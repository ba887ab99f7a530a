from django.urls import path

from livevideo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("video.mjpg", views.video, name="video"),
    path("prompt", views.set_prompt, name="set_prompt"),
    path("image", views.set_image, name="set_image"),
    path("api/status", views.status, name="status"),
    path("api/realtime-token", views.create_realtime_token, name="realtime_token"),
]
