"""Counts the requests that reach the Django app (warm pings must never do)."""

STATS = {"requests": 0}


class CountRequests:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        STATS["requests"] += 1
        return self.get_response(request)
