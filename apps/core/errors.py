"""Domain errors and the one error shape every API answer uses.

`{"error": {"code": "...", "message": "...", "details": {...}}}`

Services raise `DomainError` subclasses; `api_exception_handler` (DRF's EXCEPTION_HANDLER)
renders them and DRF's own exceptions in that shape. Validation errors name the field.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

from apps.core.text import encodable

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A business rule said no. Subclasses fix the HTTP status and a stable `code`."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details if details is not None else {}


class ValidationFailed(DomainError):
    status_code = 400
    code = "validation_error"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Unprocessable(DomainError):
    status_code = 422
    code = "unprocessable"


class PaymentRequired(DomainError):
    status_code = 402
    code = "payment_required"


class LimitExceeded(DomainError):
    """A plan or usage limit was reached; `details` names the limit."""

    status_code = 403
    code = "limit_exceeded"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _validation_message(detail: Any) -> str:
    """A one-line summary naming the first offending field: `email: Enter a valid email.`"""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _validation_message(value)
            return f"{field}: {inner}" if field != "non_field_errors" else inner
    if isinstance(detail, list) and detail:
        return _validation_message(detail[0])
    return str(detail)


def _plain(detail: Any) -> Any:
    """Error details as JSON-renderable strings (a message may quote the input, whose lone
    surrogates UTF-8 cannot encode)."""
    if isinstance(detail, dict):
        return {encodable(str(k)): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return encodable(str(detail))


_DRF_CODES = {
    drf.ParseError: "malformed_request",
    drf.AuthenticationFailed: "unauthenticated",
    drf.NotAuthenticated: "unauthenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error, expected or not, in the one shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(
            error_body(exc.code, exc.message, exc.details),
            status=exc.status_code,
            headers=headers,
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is over the size limit."),
            status=413,
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = drf.ValidationError(detail)

    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            error_body("validation_error", encodable(_validation_message(detail)), _plain(detail)),
            status=400,
        )
    if isinstance(exc, drf.APIException):
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        code = _DRF_CODES.get(type(exc)) or str(exc.default_code)
        return Response(
            error_body(code, encodable(_validation_message(exc.detail))),
            status=exc.status_code,
            headers=headers,
        )
    logger.exception("unhandled API error", exc_info=exc)
    return Response(
        error_body("internal_error", "An internal error occurred; it has been logged."),
        status=500,
    )
