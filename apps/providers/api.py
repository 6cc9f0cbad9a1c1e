"""Messages API: queue a send (202), read a message with its delivery status, and the
generic inbound endpoint for custom channels."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.conversations import selectors as conversation_selectors
from apps.conversations import services as conversations
from apps.conversations.models import SenderKind
from apps.core.api import OrganizationAPIView
from apps.core.choices import Channel
from apps.crm.models import Contact
from apps.niches.models import PromptPurpose
from apps.providers import services


class StatusUpdateOutput(serializers.Serializer):
    status = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    error_code = serializers.CharField()
    error_reason = serializers.CharField()


class MessageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    direction = serializers.CharField()
    channel = serializers.CharField()
    channel_connection_id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField()
    text = serializers.CharField()
    subject = serializers.CharField()
    template_name = serializers.CharField()
    provider_message_id = serializers.CharField(allow_null=True)
    error_code = serializers.CharField()
    error_reason = serializers.CharField()
    send_attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    read_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    trace_id = serializers.CharField(help_text="The trace this message belongs to (W3C trace id).")
    status_history = serializers.SerializerMethodField()

    def get_status_history(self, message) -> list[dict]:
        updates = sorted(message.status_updates.all(), key=lambda u: (u.occurred_at, u.created_at))
        return StatusUpdateOutput(updates, many=True).data


MESSAGE_EXAMPLE = {
    "id": "01939f50-1111-7c2b-9d51-2f0c9c8e4a11",
    "conversation_id": "01939f50-2222-7c2b-9d51-2f0c9c8e4a11",
    "contact_id": "0193a5b2-1111-7000-8000-000000000001",
    "direction": "out",
    "channel": "sms",
    "channel_connection_id": "01939f50-3333-7c2b-9d51-2f0c9c8e4a11",
    "status": "delivered",
    "text": "Hi Maya! We have a free trial class Tue 6:00 PM or Wed 7:00 AM. Which suits you?",
    "subject": "",
    "template_name": "",
    "provider_message_id": "SM1ad8ee5b2d2a4d5d8f6e1c2b3a4d5e6f",
    "error_code": "",
    "error_reason": "",
    "send_attempts": 1,
    "next_attempt_at": None,
    "created_at": "2026-11-27T10:15:03.010Z",
    "sent_at": "2026-11-27T10:15:03.420Z",
    "delivered_at": "2026-11-27T10:15:05.000Z",
    "read_at": None,
    "failed_at": None,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "status_history": [
        {
            "status": "sent",
            "occurred_at": "2026-11-27T10:15:03.420Z",
            "error_code": "",
            "error_reason": "",
        },
        {
            "status": "delivered",
            "occurred_at": "2026-11-27T10:15:05.000Z",
            "error_code": "",
            "error_reason": "",
        },
    ],
}


class MessageSendInput(serializers.Serializer):
    contact_id = serializers.UUIDField()
    text = serializers.CharField(required=False, allow_blank=True, max_length=10_000, default="")
    channel = serializers.ChoiceField(
        choices=[c for c in Channel.choices if c[0] != Channel.API], required=False
    )
    purpose = serializers.ChoiceField(choices=PromptPurpose.choices, required=False)
    template = serializers.CharField(required=False, max_length=100)
    template_variables = serializers.ListField(
        child=serializers.CharField(max_length=1000, allow_blank=True),
        required=False,
        max_length=20,
    )
    subject = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")


class MessageSendView(OrganizationAPIView):
    """`POST /api/v1/messages/`: queue an outbound message (202); the provider call is async."""

    @extend_schema(
        request=MessageSendInput,
        responses={202: MessageOutput},
        summary="Queue a message to a contact",
        description=(
            "Checks that the send is allowed and queues it; a worker calls the provider. "
            "Without `channel`, the conversation's last inbound channel is used. Outside the "
            "WhatsApp 24-hour window an approved template for `purpose` is used. 422 codes: "
            "`opted_out`, `no_channel`, `no_address`, `whatsapp_window_closed`, `unknown_template`."
        ),
        examples=[
            OpenApiExample(
                "reply", value={"contact_id": "0190f3c1-...", "text": "Hi! Want to book a class?"}
            ),
            OpenApiExample(
                "queued",
                response_only=True,
                status_codes=["202"],
                value={
                    **MESSAGE_EXAMPLE,
                    "status": "queued",
                    "provider_message_id": None,
                    "send_attempts": 0,
                    "sent_at": None,
                    "delivered_at": None,
                    "status_history": [],
                },
            ),
        ],
    )
    def post(self, request):
        data = MessageSendInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        contact = self.get_scoped_object(Contact, pk=values["contact_id"])
        message = conversations.message_send(
            organization=self.organization,
            contact=contact,
            text=values["text"],
            channel=values.get("channel"),
            purpose=values.get("purpose"),
            template=values.get("template"),
            template_variables=values.get("template_variables"),
            subject=values["subject"],
            sender_kind=SenderKind.AGENT,
        )
        message = conversation_selectors.message_get(
            organization=self.organization, message_id=message.id
        )
        return Response(MessageOutput(message).data, status=status.HTTP_202_ACCEPTED)


class MessageDetailView(OrganizationAPIView):
    """`GET /api/v1/messages/<id>/`: a message with its delivery status history."""

    @extend_schema(
        responses={200: MessageOutput},
        summary="Get a message and its delivery status",
        examples=[OpenApiExample("delivered", response_only=True, value=MESSAGE_EXAMPLE)],
    )
    def get(self, request, pk):
        message = conversation_selectors.message_get(organization=self.organization, message_id=pk)
        return Response(MessageOutput(message).data)


class InboundSenderInput(serializers.Serializer):
    external_id = serializers.CharField(required=False, max_length=255)
    phone = serializers.CharField(required=False, max_length=40)
    email = serializers.CharField(required=False, max_length=254)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def validate(self, attrs):
        if not any(attrs.get(k) for k in ("external_id", "phone", "email")):
            raise serializers.ValidationError(
                {"external_id": ["Give at least one of external_id, phone or email."]}
            )
        return attrs


class InboundAttachmentInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    content_type = serializers.CharField(required=False, max_length=100, default="")
    size = serializers.IntegerField(required=False, min_value=0, allow_null=True, default=None)
    filename = serializers.CharField(required=False, max_length=255, default="")


class InboundOutput(serializers.Serializer):
    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    duplicate = serializers.BooleanField()


class MessageInboundInput(serializers.Serializer):
    message_id = serializers.CharField(
        required=False, max_length=255, help_text="Your id for the message (dedupe)."
    )
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)
    sender = InboundSenderInput()
    text = serializers.CharField(allow_blank=True, max_length=100_000, default="")
    subject = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    sent_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    in_reply_to = serializers.UUIDField(required=False, allow_null=True, default=None)
    attachments = InboundAttachmentInput(many=True, required=False, max_length=20)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("sender")
        return fields


class MessageInboundView(OrganizationAPIView):
    """`POST /api/v1/messages/inbound/`: a normalized inbound message from a custom channel."""

    @extend_schema(
        request=MessageInboundInput,
        responses={200: InboundOutput},
        summary="Record an inbound message from a custom channel",
        description=(
            "Identity resolution, threading and events as for provider webhooks. A repeat of "
            "the same `message_id` on the same channel is 200 with `duplicate: true`."
        ),
        examples=[
            OpenApiExample(
                "chat widget",
                value={
                    "message_id": "widget-8812",
                    "from": {
                        "external_id": "visitor-77",
                        "email": "ana@example.com",
                        "name": "Ana",
                    },
                    "text": "Do you have classes on Saturday?",
                },
            )
        ],
    )
    def post(self, request):
        data = MessageInboundInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        recorded, duplicate_of = services.api_inbound_record(
            organization=self.organization, values=values
        )
        return Response(
            InboundOutput(
                {
                    "message_id": recorded.message_id or duplicate_of,
                    "conversation_id": recorded.conversation_id,
                    "contact_id": recorded.contact_id,
                    "duplicate": not recorded.created,
                }
            ).data,
            status=status.HTTP_200_OK,
        )
