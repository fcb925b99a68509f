"""Targets that behave as the anchor warmers ask their functions to, run behind the same shim and pool.

plugin_warmup: serverless-plugin-warmup's advice to the target: on its ping, sleep 25 ms and return.
lambda_warmer: jeremydaly/lambda-warmer inside the target: the first instance fans out N-1 invokes
(`Event`, the last one `RequestResponse`) through an SDK-default pool of 50 connections and waits for
them; every fanned-out instance delays 75 ms before returning.
"""
import json
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SDK_DEFAULT_SOCKETS = 50


def plugin_warmup(event, context):
    if event.get("source") == "serverless-plugin-warmup":
        time.sleep(0.025)
    return {"ok": True}


def _invoke(invocation_type, payload):
    url = "%s/2015-03-31/functions/%s/invocations" % (os.environ["AWS_ENDPOINT_URL_LAMBDA"], os.environ["AWS_LAMBDA_FUNCTION_NAME"])
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"X-Amz-Invocation-Type": invocation_type})
    with urllib.request.urlopen(request) as response:
        response.read()


def lambda_warmer(event, context):
    if not event.get("warmer"):
        return {"ok": True}
    concurrency = int(event.get("concurrency", 1))
    invocation = int(event.get("__WARMER_INVOCATION__", 1))
    if invocation > 1:
        time.sleep(0.075)
        return {"ok": True}
    calls = [("Event" if i < concurrency else "RequestResponse",
              {"warmer": True, "concurrency": concurrency, "__WARMER_INVOCATION__": i}) for i in range(2, concurrency + 1)]
    with ThreadPoolExecutor(max_workers=SDK_DEFAULT_SOCKETS) as pool:
        list(pool.map(lambda call: _invoke(*call), calls))
    return {"ok": True}
