"""Conversations API for n8n: read a contact's conversation, and hand it to a person."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.conversations import services
from apps.conversations.models import Conversation, Priority
from apps.core.api import OrganizationAPIView

TAGS = ["conversations"]
EXAMPLE = {
    "id": "01939a5d-7777-7222-8333-444455556666",
    "contact_id": "01939a5d-1111-7222-8333-444455556666",
    "status": "open",
    "priority": "high",
    "assignee_id": "01939a5d-9999-7222-8333-444455556666",
    "agent_active": False,
    "last_inbound_channel": "sms",
    "last_message_at": "2026-11-27T10:15:00Z",
    "last_inbound_at": "2026-11-27T10:15:00Z",
    "waiting_since": "2026-11-27T10:15:00Z",
    "escalated_at": "2026-11-27T10:16:02Z",
}


class ConversationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    status = serializers.CharField()
    priority = serializers.CharField()
    assignee_id = serializers.UUIDField(allow_null=True)
    agent_active = serializers.BooleanField(help_text="False once a person has taken over.")
    last_inbound_channel = serializers.CharField()
    last_message_at = serializers.DateTimeField(allow_null=True)
    last_inbound_at = serializers.DateTimeField(
        allow_null=True, help_text="Opens the WhatsApp 24-hour window."
    )
    waiting_since = serializers.DateTimeField(allow_null=True)
    escalated_at = serializers.DateTimeField(allow_null=True)


class EscalateInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.HIGH)


class ConversationDetailView(OrganizationAPIView):
    @extend_schema(
        operation_id="conversations_get",
        tags=TAGS,
        summary="A conversation (one per contact)",
        responses=ConversationOutput,
        examples=[OpenApiExample("Conversation", value=EXAMPLE, response_only=True)],
    )
    def get(self, request, pk):
        return Response(ConversationOutput(self.get_scoped_object(Conversation, pk=pk)).data)


class ConversationEscalateView(OrganizationAPIView):
    @extend_schema(
        operation_id="conversations_escalate",
        tags=TAGS,
        summary="Hand the conversation to a person (the AI agent stops answering)",
        description=(
            "What n8n calls for a decision's `escalate_to_human` action. The assignee keeps "
            "it, else it goes round robin to an available member, else to the organization's "
            "escalation target. Idempotent: an escalated conversation stays as it is."
        ),
        request=EscalateInput,
        responses=ConversationOutput,
        examples=[
            OpenApiExample(
                "Escalate",
                value={"reason": "Asked for a person about a refund", "priority": "high"},
                request_only=True,
            ),
            OpenApiExample("Escalated", value=EXAMPLE, response_only=True),
        ],
    )
    def post(self, request, pk):
        conversation = self.get_scoped_object(Conversation, pk=pk)
        data = EscalateInput(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_escalate(
            organization=self.organization,
            conversation=conversation,
            reason=data.validated_data["reason"],
            priority=data.validated_data["priority"],
            source="agent",
        )
        return Response(ConversationOutput(conversation).data)
