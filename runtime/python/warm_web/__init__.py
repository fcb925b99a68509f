"""warm-web runtime shim: serves a WSGI/ASGI app or a plain handler on AWS Lambda.

The Lambda handler is ``warm_web.handler.handler``; importing this package does nothing else.
"""
