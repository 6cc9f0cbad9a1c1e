"""Health check and JSON error pages for non-browser paths."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.defaults import page_not_found as html_page_not_found
from django.views.defaults import permission_denied as html_permission_denied
from django.views.defaults import server_error as html_server_error

from apps.core.errors import error_body


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure is "down" for a health check
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def _check_redis() -> str | None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1, retry_on_timeout=False
    )
    try:
        client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    finally:
        client.close()
    return None


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when PostgreSQL and Redis answer; 503 naming whichever did not."""
    failures = {
        name: err
        for name, err in (("postgresql", _check_database()), ("redis", _check_redis()))
        if err
    }
    checks = {name: failures.get(name, "ok") for name in ("postgresql", "redis")}
    if failures:
        return JsonResponse(
            {"status": "unavailable", "failed": sorted(failures), "checks": checks}, status=503
        )
    return JsonResponse({"status": "ok", "checks": checks})


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/hooks/")) or request.path == "/healthz"


def bad_request(request, exception=None):
    return JsonResponse(error_body("malformed_request", "Bad request."), status=400)


def permission_denied(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)
    return html_permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return html_page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(
            error_body("internal_error", "An internal error occurred; it has been logged."),
            status=500,
        )
    return html_server_error(request)
