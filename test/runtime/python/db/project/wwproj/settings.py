"""A small real Django project for the database tests: settings come from the warm-web env contract."""
import os

from warm_web.django import caches, databases

SECRET_KEY = "warm-web-db-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "wwitems"]
MIDDLEWARE = [
    "warm_web.django.ReadYourWritesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "wwproj.urls"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Fast hashing: the tests log in many times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = databases()
DATABASE_ROUTERS = ["warm_web.django.ReadReplicaRouter"]
CACHES = caches()
# Seconds before a replica that went down is tried again (30 in production; short here).
WARM_WEB_REPLICA_BACKOFF = float(os.environ.get("WW_TEST_REPLICA_BACKOFF", "30"))
