"""`POST /api/v1/decisions/`: what should the agent do now?

The view works in two steps so that the LLM is never called inside a transaction: the
base view wraps `post` in the Idempotency-Key transaction, so the decision is *prepared*
in `initial()` (before that transaction: validation, 404s, the credit check, context,
engine, guard) and only *recorded* (and executed) in `post`. A request whose
Idempotency-Key already has a stored answer skips the preparation (it is replayed).

Answers 201 with a new decision, 200 with the stored one when `event_id` was already
decided (`replayed: true`). Errors: 400 `validation_error` (field named),
`contact_conversation_mismatch`; 402 `credits_exhausted`; 404 `not_found` for another
organization's contact or conversation. Server time is in `Server-Timing: app;dur=<ms>`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView
from apps.core.models import IdempotencyRecord
from apps.decisions import actions as A
from apps.decisions import selectors, services
from apps.decisions.credits import credits_account
from apps.decisions.execution import decision_execute
from apps.decisions.models import Decision, Trigger

TAGS = ["decisions"]
MAX_MESSAGE = 4000

# --- OpenAPI: one component per action type, generated from actions.ACTION_SCHEMAS -----------

ACTION_EXAMPLES = {
    A.SEND_MESSAGE: {
        "type": "send_message",
        "channel": "whatsapp",
        "body": "Hi Maya, it's Jess from Pulse Fitness. Just following up on your enquiry: "
        "are you still interested? Reply here and we'll pick up where we left off.",
        "purpose": "follow_up",
        "prompt_key": None,
        "template": {
            "name": "sb_follow_up",
            "language": "en_US",
            "variables": ["Maya", "Pulse Fitness"],
            "purpose": "follow_up",
        },
        "send_at": "2026-03-10T13:00:00Z",
        "is_reply": False,
    },
    A.OFFER_SLOTS: {
        "type": "offer_slots",
        "appointment_type": "free-trial-class",
        "appointment_type_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f71",
        "appointment_type_name": "Free trial class",
        "timezone": "America/New_York",
        "slots": [
            {
                "start": "2026-03-10T22:00:00Z",
                "end": "2026-03-10T23:00:00Z",
                "local_start": "2026-03-10T18:00:00-04:00",
                "resource_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f72",
            }
        ],
    },
    A.BOOK_APPOINTMENT: {
        "type": "book_appointment",
        "appointment_type": "free-trial-class",
        "appointment_type_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f71",
        "start": "2026-03-10T22:00:00Z",
        "local_start": "2026-03-10T18:00:00-04:00",
        "resource_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f72",
        "booking_id": None,
    },
    A.UPDATE_CONTACT: {
        "type": "update_contact",
        "fields": {"tags": ["trial", "member"]},
        "consent": {"sms": {"opted_in": False, "reason": 'asked to stop: "stop texting"'}},
    },
    A.UPDATE_LEAD: {
        "type": "update_lead",
        "lead_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f73",
        "status": None,
        "answers": {"start_timing": "next week"},
        "score": 35,
        "reason": None,
    },
    A.MOVE_DEAL: {
        "type": "move_deal",
        "deal_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f74",
        "stage": "Trial booked",
        "stage_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f75",
    },
    A.CREATE_TASK: {
        "type": "create_task",
        "title": "Call the lead: no trial class booked yet",
        "description": "",
        "due_at": "2026-03-12T14:00:00Z",
        "deal_id": None,
    },
    A.ESCALATE_TO_HUMAN: {
        "type": "escalate_to_human",
        "reason": 'The contact asked for a person ("talk to someone").',
        "priority": "normal",
    },
    A.SCHEDULE_FOLLOW_UP: {
        "type": "schedule_follow_up",
        "at": "2026-03-11T14:00:00Z",
        "purpose": "follow_up",
        "note": "No reply to the first message yet.",
    },
    A.NO_ACTION: {
        "type": "no_action",
        "reason": "A person has taken over this conversation (agent inactive).",
    },
}


def openapi_schema(schema: dict) -> dict:
    """A JSON Schema 2020-12 fragment as OpenAPI 3.0 (`nullable`, no `const`/type lists)."""
    schema = copy.deepcopy(schema)
    if "const" in schema:
        schema = {"type": "string", "enum": [schema.pop("const")], **schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        others = [k for k in kind if k != "null"]
        schema["type"] = others[0]
        if "null" in kind:
            schema["nullable"] = True
    if "enum" in schema and None in schema["enum"]:
        schema["nullable"] = True
        schema["enum"] = [v for v in schema["enum"] if v is not None] + [None]
        schema.setdefault("type", "string")
    elif "enum" in schema:
        schema.setdefault("type", "string")
    for key in ("properties",):
        if key in schema:
            schema[key] = {name: openapi_schema(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = openapi_schema(schema[key])
    return schema


class ActionDoc(serializers.Serializer):
    """Documentation only: the OpenAPI component of one action type (see the extension)."""

    action_type = ""


def _action_doc(type_: str) -> type:
    name = "".join(part.title() for part in type_.split("_")) + "Action"
    return type(name, (ActionDoc,), {"action_type": type_, "__module__": __name__})


ACTION_DOCS = {type_: _action_doc(type_) for type_ in A.ACTION_TYPES}


class ActionDocExtension(OpenApiSerializerExtension):
    target_class = ActionDoc
    match_subclasses = True

    def _type(self) -> str:
        return self.target.action_type

    def get_name(self, auto_schema, direction):
        return ACTION_DOCS[self._type()].__name__

    def map_serializer(self, auto_schema, direction):
        schema = openapi_schema(A.ACTION_SCHEMAS[self._type()])
        schema["example"] = ACTION_EXAMPLES[self._type()]
        return schema


ACTION_UNION = PolymorphicProxySerializer(
    component_name="DecisionAction",
    serializers=ACTION_DOCS,
    resource_type_field_name="type",
    many=False,
)


@extend_schema_field(ACTION_UNION)
class ActionField(serializers.JSONField):
    pass


# --- input and output ---------------------------------------------------------------------


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string (DRF's own field also reads integers as UUIDs)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class DecisionInput(serializers.Serializer):
    contact_id = StrictUUIDField(
        required=False, allow_null=True, help_text="The contact (or give conversation_id)."
    )
    conversation_id = StrictUUIDField(
        required=False, allow_null=True, help_text="The contact's conversation."
    )
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    message = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_MESSAGE,
        help_text="The message to answer; default (message.received): the contact's last one.",
    )
    event_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=200,
        help_text="Your event id: the same id for the same contact returns the same decision.",
    )
    execute = serializers.BooleanField(
        required=False, default=False, help_text="Carry the actions out here (no n8n)."
    )
    purpose = serializers.ChoiceField(
        choices=A.MESSAGE_PURPOSES,
        required=False,
        allow_null=True,
        help_text="follow_up_due: the follow-up's purpose (default: the one scheduled).",
    )

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(k)[:100] for k in set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({k: ["Unknown field."] for k in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        if not attrs.get("contact_id") and not attrs.get("conversation_id"):
            message = "Give contact_id or conversation_id."
            raise serializers.ValidationError(
                {"contact_id": [message], "conversation_id": [message]}
            )
        return attrs


class ComplianceInterventionOutput(serializers.Serializer):
    rule = serializers.CharField(help_text="The compliance rule key.")
    action_index = serializers.IntegerField()
    action_type = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["blocked", "rewritten", "rescheduled", "warned"])
    why = serializers.CharField()


class ComplianceOutput(serializers.Serializer):
    rules_checked = serializers.ListField(child=serializers.CharField())
    interventions = ComplianceInterventionOutput(many=True)
    passed = serializers.BooleanField(help_text="False when an action was blocked.")


class TokensOutput(serializers.Serializer):
    prompt = serializers.IntegerField(allow_null=True)
    completion = serializers.IntegerField(allow_null=True)


class ExecutionResultOutput(serializers.Serializer):
    index = serializers.IntegerField()
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["done", "scheduled", "skipped", "failed"])
    detail = serializers.CharField()


class DecisionOutput(serializers.Serializer):
    decision_id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField(allow_null=True)
    trigger = serializers.CharField()
    event_id = serializers.CharField(allow_null=True)
    niche = serializers.CharField()
    engine = serializers.ChoiceField(
        choices=["rules", "llm"], help_text="The engine whose actions these are."
    )
    engine_requested = serializers.CharField(help_text="DECISION_ENGINE: rules or llm.")
    fallback_reason = serializers.CharField(
        allow_null=True, help_text="Why the LLM's answer was not used (then engine = rules)."
    )
    intent = serializers.CharField()
    actions = serializers.ListField(child=ActionField())
    rationale = serializers.CharField()
    compliance = ComplianceOutput()
    credits_used = serializers.IntegerField()
    credits_remaining = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    tokens = TokensOutput(allow_null=True)
    trace_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    replayed = serializers.BooleanField(help_text="True: the stored decision for this event_id.")
    execution = ExecutionResultOutput(many=True, allow_null=True)


def decision_payload(decision: Decision, *, niche: str, replayed: bool, balance=None) -> dict:
    tokens = None
    if decision.prompt_tokens is not None or decision.completion_tokens is not None:
        tokens = {"prompt": decision.prompt_tokens, "completion": decision.completion_tokens}
    return {
        "decision_id": str(decision.pk),
        "contact_id": str(decision.contact_id),
        "conversation_id": str(decision.conversation_id) if decision.conversation_id else None,
        "trigger": decision.trigger,
        "event_id": decision.event_id,
        "niche": niche,
        "engine": decision.engine,
        "engine_requested": decision.engine_requested,
        "fallback_reason": decision.fallback_reason or None,
        "intent": decision.intent,
        "actions": decision.actions,
        "rationale": decision.rationale,
        "compliance": decision.compliance,
        "credits_used": 0 if replayed else decision.credits_used,
        "credits_remaining": balance,
        "latency_ms": decision.latency_ms,
        "tokens": tokens,
        "trace_id": decision.trace_id,
        "created_at": A.iso(decision.created_at),
        "replayed": replayed,
        "execution": decision.execution,
    }


REQUEST_EXAMPLE = {
    "conversation_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f76",
    "trigger": "message.received",
    "message": "Do you have anything Tuesday evening?",
    "event_id": "evt_0193a5b27c1e",
}
RESPONSE_EXAMPLE = {
    "decision_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f77",
    "contact_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f78",
    "conversation_id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f76",
    "trigger": "message.received",
    "event_id": "evt_0193a5b27c1e",
    "niche": "fitness",
    "engine": "rules",
    "engine_requested": "rules",
    "fallback_reason": None,
    "intent": "book",
    "actions": [
        ACTION_EXAMPLES[A.OFFER_SLOTS],
        {
            "type": "send_message",
            "channel": "sms",
            "body": "The best first step is a free trial class: you meet the coaches, try a "
            "session and see if it feels right, with no commitment. I have Tue 6:00 PM. "
            "Which one works for you?",
            "purpose": "booking",
            "prompt_key": "booking-offer",
            "template": None,
            "send_at": None,
            "is_reply": True,
        },
    ],
    "rationale": 'Intent: book ("tuesday"). Offered 1 free Free trial class slot(s): Tue 6:00 PM.',
    "compliance": {
        "rules_checked": ["fitness-no-medical-advice", "quiet-hours-sms-whatsapp"],
        "interventions": [],
        "passed": True,
    },
    "credits_used": 1,
    "credits_remaining": 499,
    "latency_ms": 9,
    "tokens": None,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "created_at": "2026-03-09T15:04:05Z",
    "replayed": False,
    "execution": None,
}


class DecisionCreateView(OrganizationAPIView):
    """Decide the next actions for a contact (see the module docstring)."""

    prepared = None

    def initial(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        super().initial(request, *args, **kwargs)
        if request.method == "POST" and not self._replayable(request):
            self.prepared = self._prepare(request)

    def _replayable(self, request) -> bool:
        """An Idempotency-Key with a stored answer: the base view replays it (or 422s)."""
        key = (request.headers.get("Idempotency-Key") or "").strip()
        return (
            bool(key)
            and IdempotencyRecord.objects.filter(
                organization=self.organization, key=key, response_status__isnull=False
            ).exists()
        )

    def _prepare(self, request):
        serializer = DecisionInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        contact, conversation = selectors.decision_subject_get(
            organization=self.organization,
            contact_id=data.get("contact_id"),
            conversation_id=data.get("conversation_id"),
        )
        plan = services.decision_prepare(
            organization=self.organization,
            contact=contact,
            conversation=conversation,
            trigger=data["trigger"],
            message=data.get("message") or "",
            event_id=data.get("event_id"),
            purpose=data.get("purpose"),
        )
        return plan, data["execute"]

    @extend_schema(
        tags=TAGS,
        operation_id="decision_create",
        summary="Decide what the agent does next",
        description=(
            "Loads the organization's niche context and the contact's state, runs the "
            "configured engine (`rules` by default; `llm` with a fallback to `rules`), checks "
            "every action against the niche's compliance rules and returns the guarded "
            "actions. Each action is flat: `type` plus all of its type's fields (see the "
            "`DecisionAction` schemas). Nothing is executed unless `execute: true`. The same "
            "`event_id` for the same contact returns the stored decision (200, "
            "`replayed: true`, no credits)."
        ),
        request=DecisionInput,
        responses={
            201: OpenApiResponse(DecisionOutput, description="A new decision."),
            200: OpenApiResponse(
                DecisionOutput, description="The stored decision for this event_id."
            ),
            402: OpenApiResponse(description="`credits_exhausted`: the credits ran out."),
        },
        examples=[
            OpenApiExample("message received", value=REQUEST_EXAMPLE, request_only=True),
            OpenApiExample(
                "slots offered", value=RESPONSE_EXAMPLE, response_only=True, status_codes=["201"]
            ),
        ],
    )
    def post(self, request):
        plan, execute = self.prepared
        decision, created = services.decision_record(plan=plan)
        if execute and decision.execution is None:
            decision_execute(decision=decision)
        balance = plan.balance
        if balance is None:
            balance = credits_account(organization=self.organization).balance
        niche = plan.ctx.niche.niche.slug if plan.ctx else self.organization.primary_niche.slug
        payload = decision_payload(decision, niche=niche, replayed=not created, balance=balance)
        return Response(payload, status=201 if created else 200)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        started = getattr(self, "started", None)
        if started is not None:
            response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response
