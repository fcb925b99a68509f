"""Settings of the guestbook: the database and the cache come from the env contract that WarmWebStack sets
(DB_* for the writer and reader endpoints of RDS Proxy, CACHE_URL and CACHE_SECRET_ARN for Valkey)."""
import os

from warm_web.django import caches, databases

# A real site reads its key from Secrets Manager (see the README).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
# Function URLs answer on *.lambda-url.<region>.on.aws.
ALLOWED_HOSTS = [".on.aws", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "guestbook"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # After a write, the rest of the request reads the writer: no stale read of what it just wrote.
    "warm_web.django.ReadYourWritesMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "guestbook.urls"
DATABASES = databases()
DATABASE_ROUTERS = ["warm_web.django.ReadReplicaRouter"]
CACHES = caches()
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
