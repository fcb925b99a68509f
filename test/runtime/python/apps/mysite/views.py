import json

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from payloads import COOKIES, PNG, TEXT, as_json


def _json(data):
    return HttpResponse(as_json(data), content_type="application/json")


@csrf_exempt
def echo(request, rest):
    body = request.body
    form = request.content_type == "application/x-www-form-urlencoded"
    return _json({
        "method": request.method,
        "path": request.path,
        "rest": rest,
        "query": [[k, v] for k, vs in request.GET.lists() for v in vs],
        "form": [[k, v] for k, vs in request.POST.lists() for v in vs] if form else None,
        "json": json.loads(body) if request.content_type == "application/json" else None,
        "cookies": sorted(request.COOKIES.items()),
        "x_test": request.headers.get("x-test"),
        "body_len": len(body),
        "url": request.build_absolute_uri(),
    })


@csrf_exempt
def echo_bytes(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


def png(request):
    return HttpResponse(PNG, content_type="image/png")


def text(request):
    response = HttpResponse(TEXT, content_type="text/plain; charset=utf-8")
    response["X-App"] = "django"
    return response


def redirect_view(request):
    return HttpResponseRedirect("/echo/target")


def cookies(request):
    response = HttpResponse("ok")
    for name, value, options in COOKIES:
        response.set_cookie(name, value, **options)
    return response


def aws(request):
    event, context = request.META["aws.event"], request.META["aws.context"]
    return _json({
        "requestId": event["requestContext"]["requestId"],
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
    })


def where(request):
    return _json({
        "script_name": request.META["SCRIPT_NAME"],
        "path_info": request.path_info,
        "url": request.build_absolute_uri(),
        "reverse": reverse("where"),
    })


def boom(request):
    raise RuntimeError("boom")
