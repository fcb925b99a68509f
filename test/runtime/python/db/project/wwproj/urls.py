from django.urls import path

from wwproj import views

urlpatterns = [
    path("server/", views.server),
    path("items/", views.items),
    path("atomic/", views.atomic),
    path("cache/", views.cache_view),
    path("items/new/", views.new_item),
    path("login/", views.login_view),
    path("whoami/", views.whoami),
]
