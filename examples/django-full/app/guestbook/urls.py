from django.contrib import admin
from django.urls import include, path

from guestbook import views

urlpatterns = [
    path("", views.index, name="index"),
    path("sign/", views.sign, name="sign"),
    path("entries/<int:pk>/", views.entry, name="entry"),
    path("entries/", views.entries),
    path("health", views.health),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
