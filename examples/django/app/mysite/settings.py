"""Settings of the example site: no database, so it deploys with nothing else."""
import os

# The example stores nothing signed; a real site reads its key from Secrets Manager.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
# WebDistribution sets the hosts it serves (its custom domain, else .cloudfront.net). The Function URL
# answers only CloudFront (the origin secret), which passes the browser's host as X-Forwarded-Host.
# localhost: the host priming requests use.
ALLOWED_HOSTS = [h for h in os.environ.get("WARM_WEB_ALLOWED_HOSTS", "").split(",") if h] + ["localhost"]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("WARM_WEB_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
USE_X_FORWARDED_HOST = True
STATIC_URL = "/static/"
INSTALLED_APPS = ["django.contrib.contenttypes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
USE_TZ = True
