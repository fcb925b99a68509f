from django.http import JsonResponse
from django.urls import path


def index(request):
    return JsonResponse({"hello": "from Django on Lambda", "path": request.get_full_path()})


def health(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("", index), path("health", health)]
