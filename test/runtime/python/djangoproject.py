"""A minimal real Django project written into a directory, with a SQLite database there."""
import textwrap


def write_project(root, name="snapsite"):
    """Write project ``name`` under ``root``; WARM_WEB_APP is ``{name}.wsgi:application``.

    Views: ``/db`` runs a query (opening the connection), ``/hello`` answers without the database,
    ``/random`` returns ``random.random()``.
    """
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        SECRET_KEY = "test-only"
        DEBUG = False
        ALLOWED_HOSTS = ["localhost", "testserver", ".amazonaws.com"]
        INSTALLED_APPS = []
        MIDDLEWARE = []
        ROOT_URLCONF = "{name}.urls"
        # Persistent connections, as Lambda apps use them: requests leave the connection open.
        DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                  "NAME": str(Path(__file__).resolve().parent / "db.sqlite3"),
                                  "CONN_MAX_AGE": None}}}}
        USE_TZ = True
    """))
    (package / "urls.py").write_text(textwrap.dedent("""
        import json
        import random

        from django.db import connection
        from django.http import HttpResponse
        from django.urls import path

        SEEN = []

        def db(request):
            SEEN.append(request.path)
            with connection.cursor() as cursor:
                cursor.execute("select 41 + 1")
                (value,) = cursor.fetchone()
            return HttpResponse(json.dumps({"value": value}), content_type="application/json")

        def hello(request):
            SEEN.append(request.path)
            return HttpResponse("hello")

        def rand(request):
            return HttpResponse(json.dumps(random.random()), content_type="application/json")

        urlpatterns = [path("db", db), path("hello", hello), path("random", rand)]
    """))
    (package / "wsgi.py").write_text(textwrap.dedent(f"""
        import os
        from django.core.wsgi import get_wsgi_application
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{name}.settings")
        application = get_wsgi_application()
    """))
    return f"{name}.wsgi:application"
