"""The base of every `/api/v1/` view: the organization comes from the API key, and every
read and write is scoped to it. A foreign id is a 404, never a 403 (no existence leaks).
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import models
from rest_framework.views import APIView

from apps.core import ratelimit
from apps.core.errors import NotFound, RateLimited
from apps.core.idempotency import idempotent

_MUTATING = ("post", "put", "patch", "delete")


class OrganizationAPIView(APIView):
    """Resolve `self.organization` from the API key; make mutating handlers idempotent.

    Subclasses read through `self.scoped(...)` / `self.get_scoped_object(...)` or through
    selectors that take `organization=self.organization`.
    """

    organization = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method in _MUTATING:
            handler = cls.__dict__.get(method)
            if handler is not None and not getattr(handler, "idempotent", False):
                setattr(cls, method, idempotent(handler))

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.organization = request.auth.organization
        self.check_key_rate_limit(request)

    def check_key_rate_limit(self, request) -> None:
        """Per API key token bucket, so a runaway workflow cannot starve the rest (429)."""
        rate = settings.API_RATE_LIMIT_PER_SECOND
        if rate <= 0:
            return
        wait = ratelimit.acquire(
            [(f"api:{request.auth.pk}", rate, max(settings.API_RATE_LIMIT_BURST, 1))]
        )
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(
                f"Too many requests for this API key; retry after {retry_after} s.",
                retry_after=retry_after,
                details={"limit_per_second": rate, "burst": settings.API_RATE_LIMIT_BURST},
            )

    def scoped(self, model_or_queryset) -> models.QuerySet:
        queryset = (
            model_or_queryset._default_manager.all()
            if isinstance(model_or_queryset, type)
            else model_or_queryset
        )
        return queryset.filter(organization=self.organization)

    def get_scoped_object(self, model_or_queryset, **lookup):
        obj = self.scoped(model_or_queryset).filter(**lookup).first()
        if obj is None:
            model = getattr(model_or_queryset, "model", model_or_queryset)
            raise NotFound(f"{model._meta.verbose_name.capitalize()} not found.")
        return obj
