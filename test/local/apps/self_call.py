"""A handler that invokes another function through the Lambda Invoke API at AWS_ENDPOINT_URL_LAMBDA."""
import json
import os
import urllib.request


def handler(event, context):
    url = "%s/2015-03-31/functions/%s/invocations" % (os.environ["AWS_ENDPOINT_URL_LAMBDA"], event["call"])
    request = {"version": "2.0", "rawPath": "/from-inside", "rawQueryString": "", "headers": {"host": "x"},
               "requestContext": {"http": {"method": "GET", "path": "/from-inside", "sourceIp": "127.0.0.1"}}}
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(request).encode(), method="POST")) as r:
        return json.loads(r.read())
