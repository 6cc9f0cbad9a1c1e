"""The test suite: real PostgreSQL and Redis, isolated by database name and Redis db."""

import os
from urllib.parse import urlsplit, urlunsplit

from .base import *  # noqa: F403
from .base import BASE_DIR, env

DEBUG = False
# Each test run may pick its own Redis database so parallel runs never share a broker.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/15")
# Under `pytest -n N` each xdist worker gets its own Redis database (15, 14, ... for gw0, gw1,
# ...), as pytest-django gives it its own PostgreSQL database; the processes the tests start
# inherit the already-chosen URL (the marker keeps them from shifting it again).
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw") and not os.environ.get("SB_TEST_REDIS_FOR_WORKER"):
    _parsed = urlsplit(REDIS_URL)
    _db = (int(_parsed.path.strip("/") or 0) - int(_xdist_worker[2:])) % 16
    REDIS_URL = urlunsplit(_parsed._replace(path=f"/{_db}"))
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["SB_TEST_REDIS_FOR_WORKER"] = _xdist_worker
CELERY_BROKER_URL = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WEBHOOKS_ALLOW_PRIVATE_URLS = True
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # served from the apps and static/ directly (no collectstatic)
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
MEDIA_ROOT = env.path(
    "MEDIA_ROOT", default=BASE_DIR / "var" / f"test-media{_xdist_worker and '-' + _xdist_worker}"
)
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405
PUBLIC_URL = env("PUBLIC_URL", default="http://testserver")
ALLOWED_HOSTS = ["*"]
PROVIDER_SANDBOX = True  # mounted so its views are tested; production never mounts it
