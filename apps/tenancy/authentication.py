"""API-key authentication for `/api/v1/` (`Authorization: Bearer sbk_<prefix>_<secret>`)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from apps.tenancy.models import ApiKey

KEY_PREFIX = "sbk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    # Keys carry 240 bits of randomness, so a fast hash is safe (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = raw[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


@dataclass(frozen=True)
class ApiClient:
    """`request.user` for API calls: the machine client behind the key."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self):
        return self.api_key.pk

    def __str__(self) -> str:
        return f"api key {self.api_key.name}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        parts = split_key(raw.strip())
        if parts is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        prefix, secret = parts
        api_key = (
            ApiKey.objects.select_related("organization", "organization__primary_niche")
            .filter(prefix=prefix)
            .first()
        )
        if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if not api_key.organization.is_active:
            raise exceptions.AuthenticationFailed("This organization is deactivated.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiClient(api_key), api_key

    def authenticate_header(self, request) -> str:
        return self.keyword


class HasOrganization(permissions.BasePermission):
    """The request carries a valid API key (and so an organization)."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <api key>'.")
        return True
