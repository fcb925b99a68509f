"""The guestbook. Pages: the latest entries and a form to sign (logged in), POST/redirect/GET to the new
entry, which the replica may not have yet: ReadYourWritesMiddleware sends this client's reads to the writer
until it has. JSON API (/entries/): the latest entries come from the cache; on a miss, from a read replica.
A new entry is written to the writer, and the same request refreshes the cache from the writer, so no
reader sees the cached list without it, however far the replica lags."""
import json

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from guestbook.forms import SignForm
from guestbook.models import Entry

LATEST_KEY = "guestbook:latest"
LATEST_COUNT = 20
LATEST_SECONDS = 300


def _latest():
    return [entry.as_dict() for entry in Entry.objects.order_by("-id")[:LATEST_COUNT]]


# A JSON API without cookies' authority, so no CSRF token: a JSON content type is required instead, which a
# cross-site form cannot send (a page's script would need CORS, which this site does not grant).
@csrf_exempt
@require_http_methods(["GET", "POST"])
def entries(request):
    if request.method == "POST":
        try:
            if request.content_type != "application/json":
                raise ValueError(request.content_type)
            payload = json.loads(request.body or b"{}")
        except ValueError:
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


def index(request):
    latest = Entry.objects.order_by("-id")[:LATEST_COUNT]
    return render(request, "guestbook/index.html", {"entries": latest, "form": SignForm()})


@login_required
@require_POST
def sign(request):
    form = SignForm(request.POST)
    if not form.is_valid():
        latest = Entry.objects.order_by("-id")[:LATEST_COUNT]
        return render(request, "guestbook/index.html", {"entries": latest, "form": form}, status=400)
    entry = Entry.objects.create(name=request.user.get_username(), message=form.cleaned_data["message"])
    cache.set(LATEST_KEY, _latest(), LATEST_SECONDS)
    return redirect("entry", pk=entry.pk)


def entry(request, pk):
    return render(request, "guestbook/entry.html", {"entry": get_object_or_404(Entry, pk=pk)})
