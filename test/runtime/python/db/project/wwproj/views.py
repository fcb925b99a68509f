"""Each read reports which server answered it: the Server model is a view over inet_server_port() and
pg_is_in_recovery(), read through the router like any model."""
from django.contrib.auth import authenticate, login
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.utils.http import urlencode

from wwitems.models import Item, Server


def _server():
    row = Server.objects.get()
    return {"port": row.port, "standby": row.standby}


def server(request):
    return JsonResponse(_server())


def items(request):
    name = request.GET["name"]
    if request.method == "POST":
        Item.objects.create(name=name, value=int(request.GET.get("value", "0")))
        return JsonResponse({"wrote": name, "read": _server(), "found": Item.objects.filter(name=name).exists()})
    item = Item.objects.filter(name=name).first()
    return JsonResponse({"read": _server(), "found": item is not None, "value": item.value if item else None})


def atomic(request):
    with transaction.atomic():
        inside = _server()
    return JsonResponse({"inside": inside, "after": _server()})


def cache_view(request):
    key = request.GET["key"]
    if "value" in request.GET:
        cache.set(key, request.GET["value"], 60)
    return JsonResponse({"value": cache.get(key)})


def new_item(request):
    """POST, then redirect to the item (POST/redirect/GET)."""
    name = request.GET["name"]
    Item.objects.create(name=name, value=int(request.GET.get("value", "0")))
    return HttpResponseRedirect("/items/?" + urlencode({"name": name}))


def login_view(request):
    user = authenticate(request, username=request.GET["username"], password=request.GET["password"])
    if user is None:
        return JsonResponse({"error": "bad credentials"}, status=403)
    login(request, user)
    return JsonResponse({"user": user.username})


def whoami(request):
    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None,
                         "read": _server()})
