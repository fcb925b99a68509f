"""A minimal Django project the CLI's end-to-end test runs commands in (no database)."""
SECRET_KEY = "test-only-key-for-the-cli-tests-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["reports"]
ROOT_URLCONF = "cliproj.urls"
DATABASES = {}
USE_TZ = True
