"""CRM: contacts and how we recognize them, companies, leads, pipelines, deals, tasks, notes."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from apps.core.choices import Channel
from apps.core.models import TenantModel


class LifecycleStage(models.TextChoices):
    SUBSCRIBER = "subscriber", "Subscriber"
    LEAD = "lead", "Lead"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    CHURNED = "churned", "Churned"


class Company(TenantModel):
    name = models.CharField(max_length=200)
    domain = models.CharField(
        max_length=200, blank=True, help_text="e.g. example.com (lower case)."
    )
    website = models.URLField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "domain"],
                condition=~Q(domain=""),
                name="company_org_domain",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Contact(TenantModel):
    """A person the organization sells to. Recognized by its identities (ContactIdentity)."""

    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(null=True, blank=True, help_text="Lower case.")
    phone = models.CharField(
        max_length=20, null=True, blank=True, help_text="E.164, e.g. +14155550100."
    )
    company = models.ForeignKey(
        Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.LEAD
    )
    source = models.CharField(
        max_length=32, blank=True, help_text="sms, whatsapp, email, manychat, api, import..."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA; empty = the organization's."
    )
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="merged_from",
        help_text="Set on a contact merged into another; it no longer appears in lists.",
    )
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "email"], name="contact_org_email"),
            models.Index(fields=["organization", "phone"], name="contact_org_phone"),
            models.Index(fields=["organization", "-created_at"], name="contact_org_created"),
            GinIndex(fields=["tags"], name="contact_tags"),
            # Search runs `UPPER(col::text) LIKE UPPER('%term%')` (Django's icontains) and
            # `phone LIKE '%digits%'`: trigram indexes on exactly those expressions keep it
            # an index scan on organizations with hundreds of thousands of contacts.
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="contact_name_trgm"),
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="contact_email_trgm"),
            GinIndex(fields=["phone"], opclasses=["gin_trgm_ops"], name="contact_phone_trgm"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or str(self.id)


class IdentityKind(models.TextChoices):
    PHONE = "phone", "Phone (E.164)"
    EMAIL = "email", "Email"
    WHATSAPP_ID = "whatsapp_id", "WhatsApp wa_id"
    WHATSAPP_BSUID = "whatsapp_bsuid", "WhatsApp business-scoped user id"
    MANYCHAT_ID = "manychat_id", "ManyChat subscriber id"
    EXTERNAL = "external", "External id"


class ContactIdentity(TenantModel):
    """One way to recognize a contact; a (kind, value) belongs to one contact per organization."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    value = models.CharField(max_length=255, help_text="Normalized (E.164, lower-case email...).")

    class Meta:
        verbose_name_plural = "contact identities"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "value"], name="identity_org_kind_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"


class ContactConsent(TenantModel):
    """Consent per contact and channel. No row = no explicit choice (inbound implies consent)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    changed_at = models.DateTimeField()
    reason = models.CharField(
        max_length=200, blank=True, help_text="e.g. 'keyword STOP', 'Twilio 21610'."
    )
    source = models.CharField(max_length=32, blank=True, help_text="inbound, provider, api, admin.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "channel"], name="consent_contact_channel")
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.channel}: {self.status}"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    DISQUALIFIED = "disqualified", "Disqualified"
    CONVERTED = "converted", "Converted"


class Lead(TenantModel):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="leads")
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.NEW)
    score = models.IntegerField(default=0)
    score_reasons = models.JSONField(
        default=list, blank=True, help_text="The rules that fired: [{rule, points, why}]."
    )
    source = models.CharField(max_length=32, blank=True)
    campaign = models.CharField(max_length=100, blank=True)
    answers = models.JSONField(
        default=dict, blank=True, help_text="Qualification answers by field."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    disqualified_reason = models.CharField(max_length=200, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    qualified_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    deal = models.ForeignKey(
        "Deal", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status", "-created_at"], name="lead_org_status")
        ]

    def __str__(self) -> str:
        return f"Lead {self.contact} ({self.status})"


class Pipeline(TenantModel):
    name = models.CharField(max_length=100)
    niche = models.ForeignKey(
        "niches.Niche", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="pipeline_org_name"),
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_default=True), name="pipeline_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Stage(TenantModel):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=100)
    order = models.PositiveSmallIntegerField()
    probability = models.PositiveSmallIntegerField(default=0, help_text="Win probability, 0-100 %.")
    is_won = models.BooleanField(default=False)
    is_lost = models.BooleanField(default=False)
    max_idle_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Deals idle longer than this here are flagged (churn guard).",
    )

    class Meta:
        ordering = ["pipeline", "order"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "order"], name="stage_pipeline_order"),
            models.UniqueConstraint(fields=["pipeline", "name"], name="stage_pipeline_name"),
            models.CheckConstraint(
                condition=~Q(is_won=True, is_lost=True), name="stage_not_won_and_lost"
            ),
            models.CheckConstraint(condition=Q(probability__lte=100), name="stage_probability_pct"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name}: {self.name}"


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Deal(TenantModel):
    title = models.CharField(max_length=200)
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="deals"
    )
    company = models.ForeignKey(
        Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="deals"
    )
    lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="deals")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="deals")
    status = models.CharField(max_length=8, choices=DealStatus.choices, default=DealStatus.OPEN)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    expected_close_date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=32, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    stage_changed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status", "stage"], name="deal_org_status_stage")
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative")
        ]

    def __str__(self) -> str:
        return self.title


class DealStageChange(TenantModel):
    """Stage history: who moved the deal, from where to where, and when."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.ForeignKey(
        Stage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.CharField(
        max_length=100, blank=True, help_text="Who, when not a user: 'api key n8n', 'agent'."
    )

    class Meta:
        ordering = ["deal", "created_at"]

    def __str__(self) -> str:
        return f"{self.deal_id}: {self.from_stage_id} → {self.to_stage_id}"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Task(TenantModel):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="tasks"
    )
    deal = models.ForeignKey(
        Deal, on_delete=models.CASCADE, null=True, blank=True, related_name="tasks"
    )
    source = models.CharField(
        max_length=32, blank=True, help_text="api, admin, agent, churn_guard..."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["status", "due_at"]
        indexes = [
            models.Index(fields=["organization", "status", "due_at"], name="task_org_status_due")
        ]

    def __str__(self) -> str:
        return self.title


class Note(TenantModel):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notes")
    deal = models.ForeignKey(
        Deal, on_delete=models.SET_NULL, null=True, blank=True, related_name="notes"
    )
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.body[:60]
