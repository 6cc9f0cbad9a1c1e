from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView


class OrganizationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()
    niche = serializers.CharField(source="primary_niche.slug")
    timezone = serializers.CharField()
    default_phone_region = serializers.CharField()
    plan = serializers.CharField()


class OrganizationView(OrganizationAPIView):
    """The organization the API key belongs to (use it to test a key)."""

    @extend_schema(
        responses=OrganizationOutput,
        operation_id="organization_get",
        tags=["organization"],
        summary="The API key's organization",
        examples=[
            OpenApiExample(
                "Organization",
                response_only=True,
                value={
                    "id": "0193a5b2-0000-7000-8000-000000000001",
                    "name": "Pulse Fitness Studio",
                    "slug": "pulse",
                    "niche": "fitness",
                    "timezone": "America/New_York",
                    "default_phone_region": "US",
                    "plan": "starter",
                },
            )
        ],
    )
    def get(self, request):
        return Response(OrganizationOutput(self.organization).data)
