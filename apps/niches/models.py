"""Niche intelligence: how an agent sells in each niche.

Shared content (organization = NULL) is platform reference data, loaded and upgraded by
`load_niches`. An organization customizes a prompt by adding its own row with the same
`key` (an override); the shared row is never edited for one customer.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apps.core.choices import Channel


class NicheSlug(models.TextChoices):
    FITNESS = "fitness", "Fitness studio"
    MED_SPA = "med_spa", "Med spa"
    REAL_ESTATE = "real_estate", "Real estate"
    CONSULTANT = "consultant", "Consultant"
    LOCAL_SERVICE = "local_service", "Local service"


class Niche(models.Model):
    slug = models.CharField(max_length=32, unique=True, choices=NicheSlug.choices)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    qualify_threshold = models.IntegerField(
        default=60, help_text="A lead scoring at least this is qualified."
    )
    disqualify_threshold = models.IntegerField(
        default=-20, help_text="A lead scoring at most this is disqualified."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PromptPurpose(models.TextChoices):
    GREETING = "greeting", "Greeting"
    QUALIFY = "qualify", "Qualification question"
    OBJECTION = "objection", "Objection handling"
    BOOKING = "booking", "Booking / offer slots"
    BOOKING_CONFIRMATION = "booking_confirmation", "Booking confirmation"
    REMINDER = "reminder", "Reminder"
    NO_SHOW = "no_show", "No-show follow-up"
    REACTIVATION = "reactivation", "Reactivation"
    ONBOARDING = "onboarding", "Onboarding"
    FOLLOW_UP = "follow_up", "Follow-up"
    PRICE = "price", "Price question"
    HANDOFF = "handoff", "Hand-off to a human"
    FALLBACK = "fallback", "Unclear message"
    SYSTEM = "system", "LLM system prompt"


class Prompt(models.Model):
    """A message template with named `{variables}`; shared per niche or an organization override."""

    niche = models.ForeignKey(Niche, on_delete=models.CASCADE, related_name="prompts")
    organization = models.ForeignKey(
        "tenancy.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="prompt_overrides",
        help_text="Empty for shared content; set for an organization's override.",
    )
    key = models.SlugField(max_length=80, help_text="Stable id, e.g. 'greeting' or 'qualify-goal'.")
    purpose = models.CharField(max_length=32, choices=PromptPurpose.choices)
    channel = models.CharField(
        max_length=16, choices=Channel.choices, blank=True, help_text="Empty: any channel."
    )
    template = models.TextField()
    variables = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    based_on_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="For overrides: the shared version it was written against."
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["niche", "purpose", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["niche", "key"],
                condition=Q(organization__isnull=True),
                name="prompt_shared_key",
            ),
            models.UniqueConstraint(
                fields=["niche", "key", "organization"],
                condition=Q(organization__isnull=False),
                name="prompt_override_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.niche.slug}/{self.key} v{self.version}"


class Workflow(models.Model):
    """A niche's sales playbook: what happens on a trigger, step by step."""

    niche = models.ForeignKey(Niche, on_delete=models.CASCADE, related_name="workflows")
    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    trigger = models.CharField(max_length=64, help_text="Event type or schedule that starts it.")
    steps = models.JSONField(
        default=list, help_text="Ordered steps: [{action, delay, prompt, ...}]."
    )
    n8n_workflow = models.CharField(
        max_length=80,
        blank=True,
        help_text="The shipped n8n workflow (n8n/workflows/*.json) implementing it.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["niche", "key"]
        constraints = [models.UniqueConstraint(fields=["niche", "key"], name="workflow_niche_key")]

    def __str__(self) -> str:
        return f"{self.niche.slug}/{self.key}"


class QualificationRuleKind(models.TextChoices):
    ANSWER = "answer", "Answer to a question"
    KEYWORD = "keyword", "Keywords in messages"
    SOURCE = "source", "Lead source"
    ENGAGEMENT = "engagement", "Engagement (replies, bookings)"


class QualificationRule(models.Model):
    """Points towards (or against) qualifying a lead; thresholds live on the niche."""

    niche = models.ForeignKey(Niche, on_delete=models.CASCADE, related_name="qualification_rules")
    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=QualificationRuleKind.choices)
    question = models.TextField(blank=True, help_text="What the agent asks (answer rules).")
    answer_field = models.SlugField(max_length=50, blank=True, help_text="Key in lead answers.")
    condition = models.JSONField(
        default=dict,
        help_text='e.g. {"in": ["this week"]}, {"keywords": ["asap"]}, {"sources": ["referral"]}, '
        '{"min_inbound_messages": 3}',
    )
    points = models.IntegerField()
    order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["niche", "order", "key"]
        constraints = [models.UniqueConstraint(fields=["niche", "key"], name="qualrule_niche_key")]

    def __str__(self) -> str:
        return f"{self.niche.slug}/{self.key} ({self.points:+d})"


class ComplianceRuleKind(models.TextChoices):
    FORBIDDEN_PHRASE = "forbidden_phrase", "Forbidden claim or phrase"
    REQUIRED_DISCLAIMER = "required_disclaimer", "Required disclaimer"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    CONSENT_REQUIRED = "consent_required", "Consent required"
    OPT_OUT_KEYWORDS = "opt_out_keywords", "Opt-out keywords"


class Severity(models.TextChoices):
    BLOCK = "block", "Block"
    REWRITE = "rewrite", "Rewrite"
    WARN = "warn", "Warn"


class ComplianceRule(models.Model):
    """What the agent must never say or do. `niche` empty = applies to every niche."""

    niche = models.ForeignKey(
        Niche, on_delete=models.CASCADE, null=True, blank=True, related_name="compliance_rules"
    )
    key = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=24, choices=ComplianceRuleKind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    pattern = models.TextField(blank=True, help_text="Case-insensitive regular expression.")
    replacement = models.TextField(
        blank=True, help_text="Rewrite text, or the disclaimer to append."
    )
    channels = ArrayField(
        models.CharField(max_length=16, choices=Channel.choices),
        default=list,
        blank=True,
        help_text="Empty: all channels.",
    )
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='quiet_hours: {"start": "21:00", "end": "08:00"}; opt_out_keywords: '
        '{"stop": [...], "start": [...], "help": [...]}',
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name


class Objection(models.Model):
    niche = models.ForeignKey(Niche, on_delete=models.CASCADE, related_name="objections")
    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=150)
    trigger_phrases = ArrayField(models.CharField(max_length=100), default=list)
    response_template = models.TextField()
    order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["niche", "order", "key"]
        constraints = [models.UniqueConstraint(fields=["niche", "key"], name="objection_niche_key")]

    def __str__(self) -> str:
        return f"{self.niche.slug}/{self.key}"


class AgentPack(models.Model):
    """An agent persona for a niche, bundling its prompts and rules."""

    niche = models.ForeignKey(Niche, on_delete=models.CASCADE, related_name="agent_packs")
    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=150)
    persona = models.TextField(help_text="Who the agent is and how it speaks.")
    tone = models.CharField(max_length=100, blank=True)
    prompts = models.ManyToManyField(Prompt, blank=True, related_name="agent_packs")
    qualification_rules = models.ManyToManyField(
        QualificationRule, blank=True, related_name="agent_packs"
    )
    compliance_rules = models.ManyToManyField(
        ComplianceRule, blank=True, related_name="agent_packs"
    )
    objections = models.ManyToManyField(Objection, blank=True, related_name="agent_packs")
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["niche", "key"]
        constraints = [
            models.UniqueConstraint(fields=["niche", "key"], name="agentpack_niche_key"),
            models.UniqueConstraint(
                fields=["niche"], condition=Q(is_default=True), name="agentpack_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowTemplate(models.Model):
    """An importable n8n workflow that implements one or more niche workflows."""

    key = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    trigger_event = models.CharField(max_length=64)
    file = models.CharField(max_length=200, help_text="Path under n8n/workflows/.")
    niches = models.ManyToManyField(Niche, blank=True, related_name="workflow_templates")

    def __str__(self) -> str:
        return self.name


class PlatformTemplate(models.Model):
    """A provider-approved message template (e.g. WhatsApp) for sends outside the 24-hour window.

    Shared defaults have no organization; an organization registers its own approved names.
    """

    organization = models.ForeignKey(
        "tenancy.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    niche = models.ForeignKey(
        Niche, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    purpose = models.CharField(max_length=32, choices=PromptPurpose.choices)
    name = models.CharField(max_length=100, help_text="The provider's template name.")
    language = models.CharField(max_length=10, default="en_US")
    body = models.TextField(help_text="Text with {{1}}-style placeholders, as approved.")
    variables = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    is_approved = models.BooleanField(default=True)

    class Meta:
        ordering = ["channel", "purpose", "name"]

    def __str__(self) -> str:
        return f"{self.channel}:{self.name} ({self.language})"
