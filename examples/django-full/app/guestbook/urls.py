from django.urls import path

from guestbook import views

urlpatterns = [
    path("entries/", views.entries),
    path("health", views.health),
]
