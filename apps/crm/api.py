"""Core API for the CRM: contacts, notes, deals, leads, tasks, pipelines.

Thin views: parse with an InputSerializer, call one service or selector, render with an
OutputSerializer. Ids in the URL or in the body that are not the organization's are 404,
with the field named (`{"error": {"code": "not_found", "message": "owner_id: User not
found.", "details": {"owner_id": [...]}}}`). Unknown body fields are a 400.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.core.api import OrganizationAPIView
from apps.core.choices import Channel
from apps.core.pagination import page_of, paginated_response
from apps.crm import selectors, services
from apps.crm.models import DealStatus, IdentityKind, LeadStatus, LifecycleStage, TaskStatus
from apps.crm.normalize import InvalidIdentity, normalize_phone

# --- shared ---------------------------------------------------------------------------------


def _printable(name) -> str:
    """A client's field name, safe to echo (and to store: PostgreSQL refuses NUL in JSON)."""
    return str(name).replace("\x00", "\\x00")[:100]


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo ("tag" for "tags") is a 400, not a no-op."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {_printable(k): ["Unknown field."] for k in unknown}
                )
        return super().to_internal_value(data)


class CrmView(OrganizationAPIView):
    """Helpers shared by the CRM views: id resolution (404 naming the field), pagination."""

    @property
    def actor(self) -> str:
        return str(self.request.user)

    def member(self, user_id, field_name: str):
        if user_id is None:
            return None
        return selectors.member_get(
            organization=self.organization, user_id=user_id, field_name=field_name
        )

    def contact(self, contact_id, field_name: str = "contact_id"):
        if contact_id is None:
            return None
        return selectors.contact_live_get(
            organization=self.organization, contact_id=contact_id, field_name=field_name
        )

    def deal(self, deal_id, field_name: str = "deal_id"):
        if deal_id is None:
            return None
        return selectors.deal_get(
            organization=self.organization, deal_id=deal_id, field_name=field_name
        )

    def pipeline(self, pipeline_id):
        if pipeline_id is None:
            return None
        return selectors.pipeline_get(
            organization=self.organization, pipeline_id=pipeline_id, field_name="pipeline_id"
        )

    def lead(self, lead_id):
        return selectors.lead_get(organization=self.organization, lead_id=lead_id)

    @staticmethod
    def parse(serializer_class, data, **context):
        serializer = serializer_class(data=data, context=context)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class PhoneField(serializers.CharField):
    """A phone number in any common format, normalized to E.164 with the org's region."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value:
            return None
        try:
            return normalize_phone(value, region=self.context["region"])
        except InvalidIdentity as exc:
            raise serializers.ValidationError(str(exc)) from None


class ConsentInput(StrictSerializer):
    opted_in = serializers.BooleanField()
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class ConsentMapField(serializers.DictField):
    """`{"sms": {"opted_in": false, "reason": "asked by phone"}, ...}`."""

    child = ConsentInput()

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        unknown = sorted(set(value) - set(Channel.values))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown channel {unknown[0]!r}; one of {', '.join(Channel.values)}."
            )
        return value


# --- contacts -------------------------------------------------------------------------------


class IdentityOutput(serializers.Serializer):
    kind = serializers.CharField()
    value = serializers.CharField()


class ContactOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    email = serializers.EmailField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    company_id = serializers.UUIDField(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    custom_fields = serializers.DictField()
    lifecycle_stage = serializers.CharField()
    source = serializers.CharField()
    owner_id = serializers.UUIDField(allow_null=True)
    timezone = serializers.CharField()
    consent = serializers.SerializerMethodField()
    identities = IdentityOutput(many=True, source="identities.all")
    merged_into_id = serializers.UUIDField(allow_null=True)
    last_activity_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_consent(self, contact) -> dict:
        return {
            c.channel: {
                "status": c.status,
                "changed_at": serializers.DateTimeField().to_representation(c.changed_at),
                "reason": c.reason,
                "source": c.source,
            }
            for c in contact.consents.all()
        }


class ContactUpsertOutput(ContactOutput):
    created = serializers.BooleanField()
    matched_by = serializers.CharField(allow_null=True)


class ContactFilter(serializers.Serializer):
    search = serializers.CharField(required=False, max_length=100, allow_blank=True)
    tag = serializers.CharField(required=False, max_length=50)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    source = serializers.CharField(required=False, max_length=32)
    owner_id = serializers.UUIDField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class IdentityInput(StrictSerializer):
    kind = serializers.ChoiceField(choices=IdentityKind.choices)
    value = serializers.CharField(max_length=255)


class ContactCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    phone = PhoneField(required=False, allow_null=True, allow_blank=True)
    identities = IdentityInput(many=True, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50
    )
    custom_fields = serializers.DictField(required=False)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    source = serializers.CharField(max_length=32, required=False, allow_blank=True)
    owner_id = serializers.UUIDField(required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    consent = ConsentMapField(required=False)

    def validate(self, attrs):
        if not (attrs.get("email") or attrs.get("phone") or attrs.get("identities")):
            raise serializers.ValidationError(
                {"email": ["Give an email, a phone or an identity to recognize the contact."]}
            )
        return attrs


class ContactPatchInput(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    phone = PhoneField(required=False, allow_null=True, allow_blank=True)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=50
    )
    custom_fields = serializers.DictField(
        required=False, help_text="Merged into the contact's fields; a null value removes one."
    )
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    source = serializers.CharField(max_length=32, required=False, allow_blank=True)
    owner_id = serializers.UUIDField(required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    consent = ConsentMapField(required=False)


CONTACT_EXAMPLE = {
    "id": "0193a5b2-7c1e-7c3a-9f10-2b3c4d5e6f70",
    "name": "Maya Chen",
    "email": "maya.chen@example.com",
    "phone": "+14155550142",
    "company_id": None,
    "tags": ["trial", "morning-classes"],
    "custom_fields": {"goal": "strength", "referred_by": "Jordan"},
    "lifecycle_stage": "lead",
    "source": "api",
    "owner_id": None,
    "timezone": "",
    "consent": {
        "sms": {
            "status": "opted_in",
            "changed_at": "2026-03-02T15:04:05Z",
            "reason": "web form",
            "source": "api",
        }
    },
    "identities": [
        {"kind": "email", "value": "maya.chen@example.com"},
        {"kind": "phone", "value": "+14155550142"},
    ],
    "merged_into_id": None,
    "last_activity_at": "2026-03-02T15:04:05Z",
    "created_at": "2026-03-02T15:04:05Z",
    "updated_at": "2026-03-02T15:04:05Z",
}


class ContactListView(CrmView):
    """Search and list contacts; create one (duplicates are found, not created)."""

    @extend_schema(
        operation_id="contacts_list",
        tags=["contacts"],
        parameters=[ContactFilter],
        responses=page_of("PaginatedContactList", ContactOutput),
        examples=[
            OpenApiExample(
                "A page of contacts",
                value={"count": 1, "next": None, "previous": None, "results": [CONTACT_EXAMPLE]},
                response_only=True,
            )
        ],
        description="`search` matches name or email (substring, any case) and phone "
        "(digits as typed, e.g. `415 555`). Merged contacts are not listed.",
    )
    def get(self, request):
        filters = self.parse(ContactFilter, request.query_params)
        queryset = selectors.contact_list(organization=self.organization, **filters)
        return paginated_response(self, queryset, ContactOutput)

    @extend_schema(
        operation_id="contacts_create",
        tags=["contacts"],
        request=ContactCreateInput,
        responses={
            201: OpenApiResponse(ContactUpsertOutput, description="Created."),
            200: OpenApiResponse(
                ContactUpsertOutput,
                description="An existing contact matched (by identity, then email, then "
                "phone); `matched_by` says how. Blanks were filled, tags added.",
            ),
        },
        examples=[
            OpenApiExample(
                "Create",
                value={
                    "name": "Maya Chen",
                    "email": "maya.chen@example.com",
                    "phone": "(415) 555-0142",
                    "tags": ["trial"],
                    "custom_fields": {"goal": "strength"},
                    "consent": {"sms": {"opted_in": True, "reason": "web form"}},
                },
                request_only=True,
            ),
            OpenApiExample(
                "Matched an existing contact",
                value={**CONTACT_EXAMPLE, "created": False, "matched_by": "email"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request):
        data = self.parse(
            ContactCreateInput, request.data, region=self.organization.default_phone_region
        )
        result = services.contact_create(
            organization=self.organization,
            name=data.get("name", ""),
            email=data.get("email") or None,
            phone=data.get("phone") or None,
            identities=[(i["kind"], i["value"]) for i in data.get("identities", [])],
            tags=data.get("tags"),
            custom_fields=data.get("custom_fields"),
            lifecycle_stage=data.get("lifecycle_stage"),
            source=data.get("source") or "api",
            owner=self.member(data.get("owner_id"), "owner_id"),
            timezone_name=data.get("timezone", ""),
            consent=data.get("consent"),
        )
        contact = selectors.contact_get(
            organization=self.organization, contact_id=result.contact.pk
        )
        body = ContactOutput(contact).data
        body.update(created=result.created, matched_by=result.matched_by)
        return Response(body, status=status.HTTP_201_CREATED if result.created else 200)


class ContactDetailView(CrmView):
    @extend_schema(
        operation_id="contacts_get",
        tags=["contacts"],
        responses=ContactOutput,
        examples=[OpenApiExample("A contact", value=CONTACT_EXAMPLE, response_only=True)],
        description="A merged contact is still readable: `merged_into_id` names the survivor.",
    )
    def get(self, request, pk):
        contact = selectors.contact_get(organization=self.organization, contact_id=pk)
        return Response(ContactOutput(contact).data)

    @extend_schema(
        operation_id="contacts_update",
        tags=["contacts"],
        request=ContactPatchInput,
        responses={
            200: ContactOutput,
            409: OpenApiResponse(
                description="Email or phone "
                "identifies another contact (merge them), or the contact was merged."
            ),
        },
        examples=[
            OpenApiExample(
                "Tag, fields and SMS opt-out",
                value={
                    "tags": ["member"],
                    "custom_fields": {"plan": "unlimited", "goal": None},
                    "lifecycle_stage": "customer",
                    "consent": {"sms": {"opted_in": False, "reason": "asked by phone"}},
                },
                request_only=True,
            ),
            OpenApiExample("Updated", value=CONTACT_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request, pk):
        contact = selectors.contact_get(organization=self.organization, contact_id=pk)
        data = self.parse(
            ContactPatchInput, request.data, region=self.organization.default_phone_region
        )
        consent = data.pop("consent", None)
        if "owner_id" in data:
            data["owner"] = self.member(data.pop("owner_id"), "owner_id")
        for key in ("email", "phone"):
            if key in data and not data[key]:
                data[key] = None
        services.contact_update(
            organization=self.organization, contact=contact, data=data, consent=consent
        )
        contact = selectors.contact_get(organization=self.organization, contact_id=pk)
        return Response(ContactOutput(contact).data)


class NoteInput(StrictSerializer):
    body = serializers.CharField(max_length=services.MAX_NOTE_LENGTH)
    deal_id = serializers.UUIDField(required=False, allow_null=True)


class NoteOutput(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    deal_id = serializers.UUIDField(allow_null=True)
    body = serializers.CharField()
    author_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class ContactNotesView(CrmView):
    @extend_schema(
        operation_id="contacts_notes_create",
        tags=["contacts"],
        request=NoteInput,
        responses={201: NoteOutput},
        description="Adds a note to the contact (a merged contact's note goes to the contact "
        "it was merged into). `deal_id`, when given, must be one of the organization's deals.",
        examples=[
            OpenApiExample(
                "A note",
                value={"body": "Prefers evening classes; knee injury last year."},
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={
                    "id": "0193a5b2-9a00-7000-8000-000000000001",
                    "contact_id": CONTACT_EXAMPLE["id"],
                    "deal_id": None,
                    "body": "Prefers evening classes; knee injury last year.",
                    "author_id": None,
                    "created_at": "2026-03-02T15:04:05Z",
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request, pk):
        contact = selectors.contact_live_get(organization=self.organization, contact_id=pk)
        data = self.parse(NoteInput, request.data)
        note = services.note_create(
            organization=self.organization,
            contact=contact,
            body=data["body"],
            deal=self.deal(data.get("deal_id")),
        )
        return Response(NoteOutput(note).data, status=201)


# --- pipelines ------------------------------------------------------------------------------


class StageOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    order = serializers.IntegerField()
    probability = serializers.IntegerField()
    is_won = serializers.BooleanField()
    is_lost = serializers.BooleanField()
    max_idle_days = serializers.IntegerField(allow_null=True)


class PipelineOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    is_default = serializers.BooleanField()
    niche = serializers.CharField(source="niche.slug", allow_null=True, default=None)
    stages = StageOutput(many=True, source="stages.all")


PIPELINE_EXAMPLE = {
    "id": "0193a5b2-1111-7000-8000-000000000001",
    "name": "Memberships",
    "is_default": True,
    "niche": "fitness",
    "stages": [
        {
            "id": "0193a5b2-2222-7000-8000-000000000001",
            "name": "New lead",
            "order": 1,
            "probability": 10,
            "is_won": False,
            "is_lost": False,
            "max_idle_days": 2,
        },
        {
            "id": "0193a5b2-2222-7000-8000-000000000005",
            "name": "Member",
            "order": 5,
            "probability": 100,
            "is_won": True,
            "is_lost": False,
            "max_idle_days": None,
        },
    ],
}


class PipelineListView(CrmView):
    @extend_schema(
        operation_id="pipelines_list",
        tags=["deals"],
        responses=page_of("PaginatedPipelineList", PipelineOutput),
        examples=[
            OpenApiExample(
                "Pipelines",
                value={"count": 1, "next": None, "previous": None, "results": [PIPELINE_EXAMPLE]},
                response_only=True,
            )
        ],
        description="The organization's pipelines with their ordered stages, default first. "
        "The niche's default pipeline is created on first use.",
    )
    def get(self, request):
        services.pipeline_ensure_default(organization=self.organization)
        return paginated_response(
            self, selectors.pipeline_list(organization=self.organization), PipelineOutput
        )


# --- deals ----------------------------------------------------------------------------------


class StageRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    probability = serializers.IntegerField()
    is_won = serializers.BooleanField()
    is_lost = serializers.BooleanField()


class PipelineRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class DealOutput(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    status = serializers.CharField()
    pipeline = PipelineRef()
    stage = StageRef()
    contact_id = serializers.UUIDField(allow_null=True)
    company_id = serializers.UUIDField(allow_null=True)
    lead_id = serializers.UUIDField(allow_null=True)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    expected_close_date = serializers.DateField(allow_null=True)
    owner_id = serializers.UUIDField(allow_null=True)
    source = serializers.CharField()
    lost_reason = serializers.CharField()
    closed_at = serializers.DateTimeField(allow_null=True)
    stage_changed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class StageChangeOutput(serializers.Serializer):
    from_stage = serializers.CharField(source="from_stage.name", allow_null=True, default=None)
    to_stage = serializers.CharField(source="to_stage.name")
    changed_by_id = serializers.UUIDField(allow_null=True)
    actor = serializers.CharField()
    at = serializers.DateTimeField(source="created_at")


class DealDetailOutput(DealOutput):
    stage_history = StageChangeOutput(many=True, source="stage_changes.all")


DEAL_EXAMPLE = {
    "id": "0193a5b2-3333-7000-8000-000000000001",
    "title": "Maya Chen — unlimited membership",
    "status": "open",
    "pipeline": {"id": PIPELINE_EXAMPLE["id"], "name": "Memberships"},
    "stage": {
        "id": "0193a5b2-2222-7000-8000-000000000002",
        "name": "Trial booked",
        "probability": 30,
        "is_won": False,
        "is_lost": False,
    },
    "contact_id": CONTACT_EXAMPLE["id"],
    "company_id": None,
    "lead_id": None,
    "amount": "149.00",
    "currency": "USD",
    "expected_close_date": "2026-03-20",
    "owner_id": None,
    "source": "api",
    "lost_reason": "",
    "closed_at": None,
    "stage_changed_at": "2026-03-02T15:04:05Z",
    "created_at": "2026-03-02T15:04:05Z",
    "updated_at": "2026-03-02T15:04:05Z",
}
DEAL_DETAIL_EXAMPLE = {
    **DEAL_EXAMPLE,
    "stage_history": [
        {
            "from_stage": None,
            "to_stage": "New lead",
            "changed_by_id": None,
            "actor": "api key n8n",
            "at": "2026-03-01T10:00:00Z",
        },
        {
            "from_stage": "New lead",
            "to_stage": "Trial booked",
            "changed_by_id": None,
            "actor": "api key n8n",
            "at": "2026-03-02T15:04:05Z",
        },
    ],
}


class DealFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=DealStatus.choices, required=False)
    pipeline_id = serializers.UUIDField(required=False)
    stage_id = serializers.UUIDField(required=False)
    contact_id = serializers.UUIDField(required=False)
    owner_id = serializers.UUIDField(required=False)


class StageChoiceMixin(serializers.Serializer):
    stage_id = serializers.UUIDField(required=False, allow_null=True)
    stage = serializers.CharField(
        required=False, max_length=100, help_text="A stage name, instead of stage_id."
    )

    def validate(self, attrs):
        if attrs.get("stage_id") and attrs.get("stage"):
            raise serializers.ValidationError({"stage": ["Give stage_id or stage, not both."]})
        return super().validate(attrs)


class DealCreateInput(StageChoiceMixin, StrictSerializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    pipeline_id = serializers.UUIDField(required=False, allow_null=True)
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    expected_close_date = serializers.DateField(required=False, allow_null=True)
    owner_id = serializers.UUIDField(required=False, allow_null=True)
    source = serializers.CharField(max_length=32, required=False, allow_blank=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("title") and not attrs.get("contact_id"):
            raise serializers.ValidationError({"title": ["Give a title or a contact_id."]})
        return attrs


class DealStageInput(StageChoiceMixin, StrictSerializer):
    lost_reason = serializers.CharField(max_length=200, required=False, allow_blank=True)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("stage_id") and not attrs.get("stage"):
            raise serializers.ValidationError({"stage_id": ["Give stage_id or stage (a name)."]})
        return attrs


def _resolve_stage(pipeline, data):
    if data.get("stage_id"):
        return selectors.stage_resolve(pipeline=pipeline, stage_id=data["stage_id"])
    if data.get("stage"):
        return selectors.stage_resolve(pipeline=pipeline, name=data["stage"])
    return None


class DealListView(CrmView):
    @extend_schema(
        operation_id="deals_list",
        tags=["deals"],
        parameters=[DealFilter],
        responses=page_of("PaginatedDealList", DealOutput),
        examples=[
            OpenApiExample(
                "A page of deals",
                value={"count": 1, "next": None, "previous": None, "results": [DEAL_EXAMPLE]},
                response_only=True,
            )
        ],
    )
    def get(self, request):
        filters = self.parse(DealFilter, request.query_params)
        return paginated_response(
            self, selectors.deal_list(organization=self.organization, **filters), DealOutput
        )

    @extend_schema(
        operation_id="deals_create",
        tags=["deals"],
        request=DealCreateInput,
        responses={201: DealDetailOutput},
        examples=[
            OpenApiExample(
                "Open a deal in the default pipeline",
                value={
                    "contact_id": CONTACT_EXAMPLE["id"],
                    "title": "Maya Chen — unlimited membership",
                    "amount": "149.00",
                    "stage": "Trial booked",
                },
                request_only=True,
            ),
            OpenApiExample("Created", value=DEAL_DETAIL_EXAMPLE, response_only=True),
        ],
        description="The pipeline defaults to the organization's default one; the stage to "
        "its first open stage. Emits `deal.created`.",
    )
    def post(self, request):
        data = self.parse(DealCreateInput, request.data)
        contact = self.contact(data.get("contact_id"))
        pipeline = self.pipeline(data.get("pipeline_id"))
        stage = None
        if data.get("stage_id") or data.get("stage"):
            pipeline = pipeline or services.pipeline_ensure_default(organization=self.organization)
            stage = _resolve_stage(pipeline, data)
        deal = services.deal_create(
            organization=self.organization,
            title=data.get("title", ""),
            contact=contact,
            pipeline=pipeline,
            stage=stage,
            amount=data.get("amount"),
            currency=data.get("currency"),
            expected_close_date=data.get("expected_close_date"),
            owner=self.member(data.get("owner_id"), "owner_id"),
            source=data.get("source") or "api",
            actor=self.actor,
        )
        deal = selectors.deal_get(organization=self.organization, deal_id=deal.pk)
        return Response(DealDetailOutput(deal).data, status=201)


class DealDetailView(CrmView):
    @extend_schema(
        operation_id="deals_get",
        tags=["deals"],
        responses=DealDetailOutput,
        examples=[OpenApiExample("A deal", value=DEAL_DETAIL_EXAMPLE, response_only=True)],
    )
    def get(self, request, pk):
        return Response(DealDetailOutput(self.deal(pk, field_name=None)).data)


class DealStageView(CrmView):
    @extend_schema(
        operation_id="deals_move_stage",
        tags=["deals"],
        request=DealStageInput,
        responses={200: DealDetailOutput},
        examples=[
            OpenApiExample("By name", value={"stage": "Trial booked"}, request_only=True),
            OpenApiExample(
                "Lost, with a reason",
                value={"stage": "Lost", "lost_reason": "Moved out of town"},
                request_only=True,
            ),
            OpenApiExample("Moved", value=DEAL_DETAIL_EXAMPLE, response_only=True),
        ],
        description="Move the deal to a stage of its pipeline (by `stage_id` or by `stage` "
        "name). Records the history; emits `deal.stage_changed`, plus `deal.won` / "
        "`deal.lost` on a terminal stage. Moving to the current stage changes nothing.",
    )
    def post(self, request, pk):
        deal = self.deal(pk, field_name=None)
        data = self.parse(DealStageInput, request.data)
        services.deal_move_stage(
            organization=self.organization,
            deal=deal,
            stage=_resolve_stage(deal.pipeline, data),
            actor=self.actor,
            lost_reason=data.get("lost_reason", ""),
        )
        deal = selectors.deal_get(organization=self.organization, deal_id=pk)
        return Response(DealDetailOutput(deal).data)


# --- leads ----------------------------------------------------------------------------------


class LeadOutput(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    contact_name = serializers.CharField(source="contact.name")
    status = serializers.CharField()
    score = serializers.IntegerField()
    score_reasons = serializers.ListField(child=serializers.DictField())
    source = serializers.CharField()
    campaign = serializers.CharField()
    answers = serializers.DictField()
    owner_id = serializers.UUIDField(allow_null=True)
    disqualified_reason = serializers.CharField()
    deal_id = serializers.UUIDField(allow_null=True)
    scored_at = serializers.DateTimeField(allow_null=True)
    qualified_at = serializers.DateTimeField(allow_null=True)
    converted_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


LEAD_EXAMPLE = {
    "id": "0193a5b2-4444-7000-8000-000000000001",
    "contact_id": CONTACT_EXAMPLE["id"],
    "contact_name": "Maya Chen",
    "status": "qualified",
    "score": 70,
    "score_reasons": [
        {
            "rule": "goal-clear",
            "name": "Has a clear goal",
            "kind": "answer",
            "points": 30,
            "why": 'answer goal is "strength"',
        },
        {
            "rule": "start-soon",
            "name": "Wants to start soon",
            "kind": "keyword",
            "points": 40,
            "why": 'keyword "this week" in a message: "can I start this week?"',
        },
    ],
    "source": "instagram",
    "campaign": "spring-trial",
    "answers": {"goal": "strength"},
    "owner_id": None,
    "disqualified_reason": "",
    "deal_id": None,
    "scored_at": "2026-03-02T15:04:05Z",
    "qualified_at": "2026-03-02T15:04:05Z",
    "converted_at": None,
    "created_at": "2026-03-02T15:00:00Z",
    "updated_at": "2026-03-02T15:04:05Z",
}


class LeadFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=LeadStatus.choices, required=False)
    source = serializers.CharField(required=False, max_length=32)
    contact_id = serializers.UUIDField(required=False)
    min_score = serializers.IntegerField(required=False)


class LeadPatchInput(StrictSerializer):
    answers = serializers.DictField(
        required=False, help_text="Merged into the lead's answers; a null value removes one."
    )
    campaign = serializers.CharField(max_length=100, required=False, allow_blank=True)
    source = serializers.CharField(max_length=32, required=False, allow_blank=True)
    owner_id = serializers.UUIDField(required=False, allow_null=True)


class LeadQualifyInput(StrictSerializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class LeadDisqualifyInput(StrictSerializer):
    reason = serializers.CharField(max_length=200)


class LeadConvertInput(StageChoiceMixin, StrictSerializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    pipeline_id = serializers.UUIDField(required=False, allow_null=True)
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
    expected_close_date = serializers.DateField(required=False, allow_null=True)
    owner_id = serializers.UUIDField(required=False, allow_null=True)


class LeadConvertOutput(serializers.Serializer):
    lead = LeadOutput()
    deal = DealDetailOutput()


class LeadListView(CrmView):
    @extend_schema(
        operation_id="leads_list",
        tags=["leads"],
        parameters=[LeadFilter],
        responses=page_of("PaginatedLeadList", LeadOutput),
        examples=[
            OpenApiExample(
                "A page of leads",
                value={"count": 1, "next": None, "previous": None, "results": [LEAD_EXAMPLE]},
                response_only=True,
            )
        ],
    )
    def get(self, request):
        filters = self.parse(LeadFilter, request.query_params)
        return paginated_response(
            self, selectors.lead_list(organization=self.organization, **filters), LeadOutput
        )


class LeadDetailView(CrmView):
    @extend_schema(
        operation_id="leads_get",
        tags=["leads"],
        responses=LeadOutput,
        examples=[OpenApiExample("A lead", value=LEAD_EXAMPLE, response_only=True)],
        description="`score_reasons` lists every qualification rule that fired, with its "
        "points and why.",
    )
    def get(self, request, pk):
        return Response(LeadOutput(self.lead(pk)).data)

    @extend_schema(
        operation_id="leads_update",
        tags=["leads"],
        request=LeadPatchInput,
        responses=LeadOutput,
        examples=[
            OpenApiExample(
                "Qualification answers",
                value={"answers": {"goal": "strength", "start": "this week"}},
                request_only=True,
            ),
            OpenApiExample("Rescored", value=LEAD_EXAMPLE, response_only=True),
        ],
        description="New answers (or source) rescore the lead; a new or contacted lead "
        "reaching the niche's threshold is qualified (`lead.qualified`) or disqualified.",
    )
    def patch(self, request, pk):
        lead = self.lead(pk)
        data = self.parse(LeadPatchInput, request.data)
        if "owner_id" in data:
            data["owner"] = self.member(data.pop("owner_id"), "owner_id")
        services.lead_update(organization=self.organization, lead=lead, data=data)
        return Response(LeadOutput(self.lead(pk)).data)


class LeadQualifyView(CrmView):
    @extend_schema(
        operation_id="leads_qualify",
        tags=["leads"],
        request=LeadQualifyInput,
        responses={200: LeadOutput, 409: OpenApiResponse(description="Already converted.")},
        examples=[
            OpenApiExample("Qualify", value={"reason": "Budget confirmed"}, request_only=True),
            OpenApiExample("Qualified", value=LEAD_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request, pk):
        lead = self.lead(pk)
        data = self.parse(LeadQualifyInput, request.data)
        services.lead_qualify(
            organization=self.organization,
            lead=lead,
            reason=data.get("reason", ""),
            actor=self.actor,
        )
        return Response(LeadOutput(self.lead(pk)).data)


class LeadDisqualifyView(CrmView):
    @extend_schema(
        operation_id="leads_disqualify",
        tags=["leads"],
        request=LeadDisqualifyInput,
        responses={200: LeadOutput, 409: OpenApiResponse(description="Already converted.")},
        examples=[
            OpenApiExample(
                "Disqualify", value={"reason": "Outside our service area"}, request_only=True
            ),
            OpenApiExample(
                "Disqualified",
                value={
                    **LEAD_EXAMPLE,
                    "status": "disqualified",
                    "disqualified_reason": "Outside our service area",
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request, pk):
        lead = self.lead(pk)
        data = self.parse(LeadDisqualifyInput, request.data)
        services.lead_disqualify(
            organization=self.organization, lead=lead, reason=data["reason"], actor=self.actor
        )
        return Response(LeadOutput(self.lead(pk)).data)


class LeadConvertView(CrmView):
    @extend_schema(
        operation_id="leads_convert",
        tags=["leads"],
        request=LeadConvertInput,
        responses={201: LeadConvertOutput, 409: OpenApiResponse(description="Already converted.")},
        examples=[
            OpenApiExample(
                "Convert",
                value={"title": "Unlimited membership", "amount": "149.00"},
                request_only=True,
            ),
            OpenApiExample(
                "Converted",
                value={
                    "lead": {**LEAD_EXAMPLE, "status": "converted", "deal_id": DEAL_EXAMPLE["id"]},
                    "deal": DEAL_DETAIL_EXAMPLE,
                },
                response_only=True,
            ),
        ],
        description="Creates a deal for the lead's contact (default pipeline and first stage "
        "unless given) and marks the lead converted. Emits `deal.created` and "
        "`lead.converted`.",
    )
    def post(self, request, pk):
        lead = self.lead(pk)
        data = self.parse(LeadConvertInput, request.data)
        pipeline = self.pipeline(data.get("pipeline_id"))
        stage = None
        if data.get("stage_id") or data.get("stage"):
            pipeline = pipeline or services.pipeline_ensure_default(organization=self.organization)
            stage = _resolve_stage(pipeline, data)
        conversion = services.lead_convert(
            organization=self.organization,
            lead=lead,
            title=data.get("title", ""),
            amount=data.get("amount"),
            currency=data.get("currency"),
            pipeline=pipeline,
            stage=stage,
            expected_close_date=data.get("expected_close_date"),
            owner=self.member(data.get("owner_id"), "owner_id"),
            actor=self.actor,
        )
        body = {
            "lead": LeadOutput(self.lead(pk)).data,
            "deal": DealDetailOutput(
                selectors.deal_get(organization=self.organization, deal_id=conversion.deal.pk)
            ).data,
        }
        return Response(body, status=201)


# --- tasks ----------------------------------------------------------------------------------


class TaskOutput(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True)
    assignee_id = serializers.UUIDField(allow_null=True)
    contact_id = serializers.UUIDField(allow_null=True)
    deal_id = serializers.UUIDField(allow_null=True)
    source = serializers.CharField()
    completed_at = serializers.DateTimeField(allow_null=True)
    completed_by_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


TASK_EXAMPLE = {
    "id": "0193a5b2-5555-7000-8000-000000000001",
    "title": "Call Maya about the trial class",
    "description": "She asked about evening slots.",
    "status": "open",
    "due_at": "2026-03-03T17:00:00Z",
    "assignee_id": None,
    "contact_id": CONTACT_EXAMPLE["id"],
    "deal_id": None,
    "source": "api",
    "completed_at": None,
    "completed_by_id": None,
    "created_at": "2026-03-02T15:04:05Z",
    "updated_at": "2026-03-02T15:04:05Z",
}


class TaskFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    assignee_id = serializers.UUIDField(required=False)
    contact_id = serializers.UUIDField(required=False)
    deal_id = serializers.UUIDField(required=False)
    due_before = serializers.DateTimeField(required=False)


class TaskCreateInput(StrictSerializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    due_at = serializers.DateTimeField(required=False, allow_null=True)
    assignee_id = serializers.UUIDField(required=False, allow_null=True)
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    deal_id = serializers.UUIDField(required=False, allow_null=True)
    source = serializers.CharField(max_length=32, required=False, allow_blank=True)


class TaskListView(CrmView):
    @extend_schema(
        operation_id="tasks_list",
        tags=["tasks"],
        parameters=[TaskFilter],
        responses=page_of("PaginatedTaskList", TaskOutput),
        examples=[
            OpenApiExample(
                "A page of tasks",
                value={"count": 1, "next": None, "previous": None, "results": [TASK_EXAMPLE]},
                response_only=True,
            )
        ],
        description="Soonest due first (no due date last).",
    )
    def get(self, request):
        filters = self.parse(TaskFilter, request.query_params)
        return paginated_response(
            self, selectors.task_list(organization=self.organization, **filters), TaskOutput
        )

    @extend_schema(
        operation_id="tasks_create",
        tags=["tasks"],
        request=TaskCreateInput,
        responses={201: TaskOutput},
        examples=[
            OpenApiExample(
                "Follow up",
                value={
                    "title": "Call Maya about the trial class",
                    "due_at": "2026-03-03T17:00:00Z",
                    "contact_id": CONTACT_EXAMPLE["id"],
                },
                request_only=True,
            ),
            OpenApiExample("Created", value=TASK_EXAMPLE, response_only=True),
        ],
        description="Emits `task.created`.",
    )
    def post(self, request):
        data = self.parse(TaskCreateInput, request.data)
        task = services.task_create(
            organization=self.organization,
            title=data["title"],
            description=data.get("description", ""),
            due_at=data.get("due_at"),
            assignee=self.member(data.get("assignee_id"), "assignee_id"),
            contact=self.contact(data.get("contact_id")),
            deal=self.deal(data.get("deal_id")),
            source=data.get("source") or "api",
        )
        return Response(TaskOutput(task).data, status=201)


class TaskDetailView(CrmView):
    @extend_schema(
        operation_id="tasks_get",
        tags=["tasks"],
        responses=TaskOutput,
        examples=[OpenApiExample("A task", value=TASK_EXAMPLE, response_only=True)],
    )
    def get(self, request, pk):
        return Response(
            TaskOutput(selectors.task_get(organization=self.organization, task_id=pk)).data
        )


class TaskCompleteView(CrmView):
    @extend_schema(
        operation_id="tasks_complete",
        tags=["tasks"],
        request=None,
        responses={200: TaskOutput, 409: OpenApiResponse(description="The task was cancelled.")},
        examples=[
            OpenApiExample(
                "Done",
                value={**TASK_EXAMPLE, "status": "done", "completed_at": "2026-03-03T16:40:00Z"},
                response_only=True,
            )
        ],
        description="Emits `task.completed` (once: completing a done task changes nothing).",
    )
    def post(self, request, pk):
        task = selectors.task_get(organization=self.organization, task_id=pk)
        task = services.task_complete(organization=self.organization, task=task)
        return Response(TaskOutput(task).data)
