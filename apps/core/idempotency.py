"""`Idempotency-Key` for every mutating API call.

Applied structurally: `OrganizationAPIView` wraps its `post`/`put`/`patch`/`delete` with
`idempotent`. With a key, the handler runs inside one transaction that first claims the
(organization, key) row:

- new key: the handler runs; a response below 500 is stored with the row and committed
  together with the handler's writes (so either both exist or neither does);
- a concurrent duplicate blocks on the row's unique index until the first commits, then
  replays the stored response (the effect runs once);
- a repeat replays the stored response with `Idempotent-Replayed: true`;
- the same key with a different method, path or body is 422;
- a 5xx is never stored: the transaction rolls back and the key can be retried.
Keys expire after IDEMPOTENCY_KEY_TTL_HOURS (a beat job deletes them).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response

from apps.core.errors import ValidationFailed, error_body
from apps.core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_REPLAYED_HEADERS = ("Location", "Retry-After")


class _Rollback(Exception):
    def __init__(self, response):
        self.response = response


def request_fingerprint(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.path.encode())
    digest.update(b"\0")
    digest.update(request.body or b"")
    return digest.hexdigest()


def _claim(organization_id, key: str, fingerprint: str, request) -> IdempotencyRecord:
    """Insert the key row or wait for the transaction that holds it; return it locked."""
    expires_at = timezone.now() + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table}
                (organization_id, key, fingerprint, method, path, response_headers,
                 created_at, expires_at)
            VALUES (%s, %s, %s, %s, %s, '{{}}', now(), %s)
            ON CONFLICT (organization_id, key) DO NOTHING
            """,  # noqa: S608 - table name is our own model's
            [organization_id, key, fingerprint, request.method, request.path[:500], expires_at],
        )
    return IdempotencyRecord.objects.select_for_update().get(
        organization_id=organization_id, key=key
    )


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body, status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def idempotent(handler):
    """Wrap a DRF handler (`post`, `patch`, ...) of an `OrganizationAPIView`."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.",
                code="invalid_idempotency_key",
                details={HEADER: ["invalid length"]},
            )
        fingerprint = request_fingerprint(request)
        try:
            with transaction.atomic():
                record = _claim(view.organization.pk, key, fingerprint, request)
                if record.response_status is not None:
                    if record.fingerprint != fingerprint:
                        return Response(
                            error_body(
                                "idempotency_key_reused",
                                f"{HEADER} {key!r} was already used with a different request.",
                                {"original_method": record.method, "original_path": record.path},
                            ),
                            status=422,
                        )
                    return _replay(record)
                try:
                    response = handler(view, request, *args, **kwargs)
                except Exception as exc:  # rendered like DRF would, so 4xx can be stored
                    response = view.handle_exception(exc)
                if response.status_code >= 500:
                    raise _Rollback(response)
                record.fingerprint = fingerprint
                record.response_status = response.status_code
                record.response_body = response.data
                record.response_headers = {
                    h: response[h] for h in _REPLAYED_HEADERS if response.has_header(h)
                }
                record.save(
                    update_fields=[
                        "fingerprint",
                        "response_status",
                        "response_body",
                        "response_headers",
                    ]
                )
                return response
        except _Rollback as rollback:
            return rollback.response

    wrapper.idempotent = True
    return wrapper


def idempotency_records_expire(*, now=None) -> int:
    """Delete expired keys. Idempotent; returns how many rows went."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted
