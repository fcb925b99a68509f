"""Settings of the guestbook: the database and the cache come from the env contract that WarmWebStack sets
(DB_* for the writer and reader endpoints of RDS Proxy, CACHE_URL and CACHE_SECRET_ARN for Valkey), the hosts
from WARM_WEB_ALLOWED_HOSTS / WARM_WEB_CSRF_TRUSTED_ORIGINS."""
import os
from pathlib import Path

from warm_web.django import allowed_hosts, caches, csrf_trusted_origins, databases

BASE_DIR = Path(__file__).resolve().parent.parent

# A real site reads its key from Secrets Manager (see the README).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
# Function URLs answer on *.lambda-url.<region>.on.aws; a custom domain comes in WARM_WEB_ALLOWED_HOSTS.
ALLOWED_HOSTS = allowed_hosts(default=[".on.aws"])
# The site's own origin when a CDN in front forwards to the function URL (the browser's Origin differs).
CSRF_TRUSTED_ORIGINS = csrf_trusted_origins()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guestbook",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collectstatic), hashed names cached for a year, without a CDN.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After a write, this client reads the writer until the replica has it: before SessionMiddleware, so
    # that a login's session write counts.
    "warm_web.django.ReadYourWritesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "guestbook.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = databases()
DATABASE_ROUTERS = ["warm_web.django.ReadReplicaRouter"]
CACHES = caches()
# Sessions live in the database (Django's default); warm_web reads them on the writer.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# `python manage.py collectstatic` when packaging writes STATIC_ROOT inside the code.
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or str(BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
