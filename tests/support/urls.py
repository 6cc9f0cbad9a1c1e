"""The project's URLs plus probe views that exercise shared mechanisms (idempotency, traces)."""

import uuid

from django.db import transaction
from django.http import JsonResponse
from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView
from apps.core.errors import Conflict
from apps.events.services import emit
from tests.support.tasks import emit_probe


class ProbeInput(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    conflict = serializers.BooleanField(default=False)
    crash = serializers.BooleanField(default=False)


class ProbeView(OrganizationAPIView):
    """POST: emit one event (the observable effect); PATCH: same, for the PATCH path."""

    def post(self, request):
        data = ProbeInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["conflict"]:
            raise Conflict("probe conflict", code="probe_conflict")
        with transaction.atomic():
            event = emit(
                organization=self.organization,
                type="contact.created",
                subject_type="contact",
                subject_id=uuid.uuid4(),
                data={"contact_id": str(uuid.uuid4()), "name": data.validated_data["name"]},
            )
            if data.validated_data["crash"]:
                raise RuntimeError("probe crash")
        return Response({"event_id": str(event.id), "sequence": event.sequence}, status=201)

    patch = post

    def get(self, request):
        return Response({"organization": self.organization.slug})


def enqueue_probe(request):
    """Queue a task from a web request (the trace must follow it into the worker)."""
    emit_probe.delay(request.GET["organization"], str(uuid.uuid4()))
    return JsonResponse({"queued": True})


urlpatterns = [
    path("probe/", ProbeView.as_view()),
    path("probe-enqueue/", enqueue_probe),
    path("", include("config.urls")),
]

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
