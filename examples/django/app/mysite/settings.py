"""Settings of the example site: no database, so it deploys with nothing else."""
import os

# The example stores nothing signed; a real site reads its key from Secrets Manager.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
# Function URLs answer on *.lambda-url.<region>.on.aws, HTTP APIs on *.execute-api.<region>.amazonaws.com.
ALLOWED_HOSTS = [".on.aws", ".amazonaws.com", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
USE_TZ = True
