"""The test suite: real PostgreSQL and Redis, isolated by database name and Redis db."""

from .base import *  # noqa: F403
from .base import BASE_DIR, env

DEBUG = False
# Each test run may pick its own Redis database so parallel runs never share a broker.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/15")
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WEBHOOKS_ALLOW_PRIVATE_URLS = True
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # served from the apps and static/ directly (no collectstatic)
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "test-media")
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405
PUBLIC_URL = env("PUBLIC_URL", default="http://testserver")
ALLOWED_HOSTS = ["*"]
PROVIDER_SANDBOX = True  # mounted so its views are tested; production never mounts it
