"""The origin secret (``WARM_WEB_ORIGIN_SECRET``, set by ``WebDistribution``).

With it set, an HTTP event must carry the ``x-warm-web-origin`` header that CloudFront adds as an
origin custom header, or it is answered 403 without the app seeing it. The header is removed before
the app sees the event. Events that are not HTTP requests (warm pings, commands, SQS...) pass.
"""
import os

HEADER = "x-warm-web-origin"
_PLAIN = "text/plain; charset=utf-8"


def _take(headers):
    """Removes the header (any case) from a headers dict; returns its values."""
    if not isinstance(headers, dict):
        return []
    found = []
    for name in [n for n in headers if isinstance(n, str) and n.lower() == HEADER]:
        value = headers.pop(name)
        found.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return found


def refuse(event, secret=None):
    """The 403 answer for an HTTP event that did not come through the distribution, or None when
    the event may go on (no secret set, not an HTTP event, or the right header, now removed)."""
    if secret is None:
        secret = os.environ.get("WARM_WEB_ORIGIN_SECRET")
    if not secret or not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        return None
    # A REST API event carries the header in both maps; multiValueHeaders has every copy of it.
    single = _take(event.get("headers"))
    multi = _take(event.get("multiValueHeaders"))
    values = multi if isinstance(event.get("multiValueHeaders"), dict) else single
    # CloudFront overwrites a viewer's header of the same name: through it there is exactly one.
    if len(values) == 1:
        import hmac  # only functions behind a distribution pay for it
        if hmac.compare_digest(values[0].encode("utf-8", "surrogateescape"), secret.encode()):
            return None
    alb = isinstance(event["requestContext"].get("elb"), dict)
    answer = {"statusCode": 403, "body": "Forbidden", "isBase64Encoded": False}
    if alb:
        answer["statusDescription"] = "403 Forbidden"
    if alb and isinstance(event.get("multiValueHeaders"), dict):
        answer["multiValueHeaders"] = {"content-type": [_PLAIN]}
    else:
        answer["headers"] = {"content-type": _PLAIN}
    return answer
