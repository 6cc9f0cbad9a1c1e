"""`/api/v1/niches/`: the niches and their sales content, as the calling organization sees it."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView
from apps.core.pagination import page_of, paginated_response
from apps.niches import selectors


class NicheCountsOutput(serializers.Serializer):
    prompts = serializers.IntegerField(source="prompt_count")
    workflows = serializers.IntegerField(source="workflow_count")
    qualification_rules = serializers.IntegerField(source="qualification_rule_count")
    compliance_rules = serializers.IntegerField(
        source="compliance_rule_count",
        help_text="The niche's rules plus the rules that apply to every niche.",
    )
    objections = serializers.IntegerField(source="objection_count")


class NicheListItemOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    qualify_threshold = serializers.IntegerField()
    disqualify_threshold = serializers.IntegerField()
    is_primary = serializers.BooleanField(help_text="The calling organization's primary niche.")
    counts = NicheCountsOutput(source="*")


NicheListOutput = page_of("NicheListOutput", NicheListItemOutput)


class AgentPackOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    agent_name = serializers.CharField()
    persona = serializers.CharField()
    tone = serializers.CharField()


class PromptOutput(serializers.Serializer):
    key = serializers.CharField()
    purpose = serializers.CharField()
    channel = serializers.CharField(help_text="Empty: any channel.")
    template = serializers.CharField()
    variables = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField(help_text="Version of the shared prompt.")
    is_override = serializers.BooleanField(
        help_text="The template is this organization's override of the shared prompt."
    )
    based_on_version = serializers.IntegerField(
        allow_null=True, help_text="Overrides: the shared version the override was written for."
    )
    is_outdated = serializers.BooleanField(
        help_text="An override written for an older version of the shared prompt."
    )


class WorkflowOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    trigger = serializers.CharField()
    steps = serializers.ListField(child=serializers.DictField())
    n8n_workflow = serializers.CharField(help_text="Key of the shipped n8n workflow, or empty.")


class QualificationRuleOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    question = serializers.CharField()
    answer_field = serializers.CharField()
    condition = serializers.DictField()
    points = serializers.IntegerField()


class ComplianceRuleOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    severity = serializers.CharField()
    pattern = serializers.CharField(help_text="Case-insensitive regular expression.")
    replacement = serializers.CharField()
    channels = serializers.ListField(child=serializers.CharField(), help_text="Empty: all.")
    config = serializers.DictField()
    is_global = serializers.BooleanField(help_text="Applies to every niche.")


class ObjectionOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    trigger_phrases = serializers.ListField(child=serializers.CharField())
    response_template = serializers.CharField()


class NicheDetailOutput(serializers.Serializer):
    slug = serializers.CharField(source="niche.slug")
    name = serializers.CharField(source="niche.name")
    description = serializers.CharField(source="niche.description")
    qualify_threshold = serializers.IntegerField(source="niche.qualify_threshold")
    disqualify_threshold = serializers.IntegerField(source="niche.disqualify_threshold")
    is_primary = serializers.BooleanField()
    agent_pack = AgentPackOutput(allow_null=True)
    prompts = PromptOutput(many=True)
    workflows = WorkflowOutput(many=True)
    qualification_rules = QualificationRuleOutput(many=True)
    compliance_rules = ComplianceRuleOutput(many=True)
    objections = ObjectionOutput(many=True)


_LIST_EXAMPLE = {
    "count": 5,
    "next": None,
    "previous": None,
    "results": [
        {
            "slug": "fitness",
            "name": "Fitness studio",
            "description": "Boutique gyms, yoga and pilates studios, personal trainers: ...",
            "qualify_threshold": 60,
            "disqualify_threshold": -20,
            "is_primary": True,
            "counts": {
                "prompts": 7,
                "workflows": 4,
                "qualification_rules": 3,
                "compliance_rules": 5,
                "objections": 4,
            },
        }
    ],
}

_DETAIL_EXAMPLE = {
    "slug": "fitness",
    "name": "Fitness studio",
    "description": "Boutique gyms, yoga and pilates studios, personal trainers: ...",
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
    "is_primary": True,
    "agent_pack": {
        "key": "front-desk",
        "name": "Front-desk coach",
        "agent_name": "Jess",
        "persona": "Jess runs the front desk of a boutique fitness studio. ...",
        "tone": "Warm, upbeat and encouraging; short texts",
    },
    "prompts": [
        {
            "key": "greeting",
            "purpose": "greeting",
            "channel": "",
            "template": "Hey {first_name}! {agent_name} here from {business_name}. ...",
            "variables": ["first_name", "agent_name", "business_name"],
            "version": 2,
            "is_override": True,
            "based_on_version": 1,
            "is_outdated": True,
        }
    ],
    "workflows": [
        {
            "key": "trial-no-show",
            "name": "Missed trial class → rebook",
            "description": "Half an hour after a missed trial class, ...",
            "trigger": "booking.no_show",
            "steps": [{"action": "send_prompt", "prompt": "no-show", "delay": "PT30M"}],
            "n8n_workflow": "no-show-follow-up",
        }
    ],
    "qualification_rules": [
        {
            "key": "start-soon",
            "name": "Wants to start within two weeks",
            "kind": "answer",
            "question": "When would you like to start?",
            "answer_field": "start_timing",
            "condition": {"in": ["today", "tomorrow", "this week", "next week", "asap"]},
            "points": 35,
        }
    ],
    "compliance_rules": [
        {
            "key": "quiet-hours-sms-whatsapp",
            "name": "Quiet hours: no texts between 9 PM and 8 AM (contact's local time)",
            "kind": "quiet_hours",
            "severity": "block",
            "pattern": "",
            "replacement": "",
            "channels": ["sms", "whatsapp"],
            "config": {"start": "21:00", "end": "08:00", "reply_window_minutes": 30},
            "is_global": True,
        }
    ],
    "objections": [
        {
            "key": "price",
            "name": "Too expensive",
            "trigger_phrases": ["too expensive", "can't afford"],
            "response_template": "Totally fair, {first_name}. That's exactly why ...",
        }
    ],
}


class NicheListView(OrganizationAPIView):
    """The five niches with counts of their content; the organization's own is marked."""

    @extend_schema(
        operation_id="niches_list",
        tags=["niches"],
        responses=NicheListOutput,
        examples=[OpenApiExample("Niches", value=_LIST_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        return paginated_response(
            self, selectors.niche_list(organization=self.organization), NicheListItemOutput
        )


class NicheDetailView(OrganizationAPIView):
    """One niche's prompts (this organization's overrides applied and flagged), workflows,
    qualification rules, compliance rules (including those for every niche) and objections."""

    @extend_schema(
        operation_id="niches_retrieve",
        tags=["niches"],
        responses=NicheDetailOutput,
        examples=[OpenApiExample("Fitness", value=_DETAIL_EXAMPLE, response_only=True)],
    )
    def get(self, request, slug: str):
        detail = selectors.niche_detail(organization=self.organization, slug=slug)
        return Response(NicheDetailOutput(detail).data)
