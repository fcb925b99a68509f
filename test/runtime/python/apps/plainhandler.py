"""A plain Lambda handler, for the ``handler`` kind."""

CALLS = []


def handler(event, context):
    CALLS.append((event, context))
    return {"handled": True}
