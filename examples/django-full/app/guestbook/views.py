"""The guestbook: the latest entries come from the cache; on a miss, from a read replica. A new entry is
written to the writer, and the same request refreshes the cache from the writer (the middleware routes its
reads there), so no reader sees the cached list without it, however far the replica lags."""
import json

from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.http import require_http_methods

from guestbook.models import Entry

LATEST_KEY = "guestbook:latest"
LATEST_COUNT = 20
LATEST_SECONDS = 300


def _latest():
    return [entry.as_dict() for entry in Entry.objects.order_by("-id")[:LATEST_COUNT]]


@require_http_methods(["GET", "POST"])
def entries(request):
    if request.method == "POST":
        try:
            payload = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return JsonResponse({"error": "the body must be JSON"}, status=400)
        name, message = str(payload.get("name", "")).strip(), str(payload.get("message", "")).strip()
        if not name or not message or len(name) > 100 or len(message) > 500:
            return JsonResponse({"error": "name (1-100 characters) and message (1-500) are required"}, status=400)
        entry = Entry.objects.create(name=name, message=message)
        cache.set(LATEST_KEY, _latest(), LATEST_SECONDS)
        return JsonResponse(entry.as_dict(), status=201)

    latest = cache.get(LATEST_KEY)
    hit = latest is not None
    if not hit:
        latest = _latest()
        cache.set(LATEST_KEY, latest, LATEST_SECONDS)
    response = JsonResponse({"entries": latest})
    response["X-Cache"] = "hit" if hit else "miss"
    return response


def health(request):
    return JsonResponse({"ok": True})
