"""Niche intelligence: how an agent sells in each niche.

Shared content (organization = NULL) is platform reference data, loaded and upgraded by
`load_niches` from `apps/niches/content/`. An organization customizes a prompt by adding its
own row with the same `key` (an override, see `apps.niches.services`); the shared row is
never edited for one customer. Reads go through `apps.niches.selectors` (cached per
organization). The full semantics are in docs/niches.md.
"""

import re

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.core.choices import Channel
from apps.niches.templating import whatsapp_placeholders

_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


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
    """A message template with named `{variables}`; shared per niche or an organization override.

    Template syntax: `{first_name}` is a variable, `{{`/`}}` literal braces (see
    `apps.niches.templating`). `variables` lists exactly the variables the template uses.
    `version` of a shared prompt goes up each time the loader changes its template; an
    override records the shared version it was written against in `based_on_version`
    (older than the shared `version` = the override may need a look).
    """

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
        default=list,
        help_text="Ordered steps: [{action, prompt, delay, when, ...}]; actions and their "
        "parameters are listed in docs/niches.md.",
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
    """What the agent must never say or do. `niche` empty = applies to every niche.

    Semantics by kind (the decision engine's compliance guard and the message ingress rely
    on them; docs/niches.md has examples):

    - `forbidden_phrase`: `pattern` is a case-insensitive regular expression searched in an
      outgoing text. On a match, severity `block` = the text must not be sent; `rewrite` =
      every match is replaced by `replacement`; `warn` = sent, but the match is recorded.
    - `required_disclaimer`: when an outgoing text matches `pattern` (the topic),
      `replacement` (the disclaimer) must be present in it; `rewrite` appends it (after a
      space), `block` refuses a text without it, `warn` records it.
    - `quiet_hours`: `config = {"start": "21:00", "end": "08:00", "reply_window_minutes": 30}`
      in the contact's local time (`contact.timezone`, else the organization's). Messages
      the business initiates on `channels` inside the window are held until `end`
      (severity `block`) or only recorded (`warn`). A direct reply to a message the contact
      sent within `reply_window_minutes` is not held.
    - `consent_required`: `config = {"channels": [...], "requires": "opted_in",
      "reply_window_hours": 24}`: outbound on those channels needs the contact's explicit
      opt-in on that channel; a reply within `reply_window_hours` of the contact's last
      inbound message on the channel counts as consented. An opt-out always blocks.
    - `opt_out_keywords`: `config = {"stop": [...], "start": [...], "help": [...]}`:
      upper-case keywords matched against a whole inbound message (trimmed, upper-cased,
      trailing punctuation removed). stop = opt out of the channel, start = opt back in,
      help = answer with the organization's help text. Rules of every applicable niche are
      merged (`apps.niches.selectors.opt_out_keywords`).

    `channels` empty = every channel. Only `is_active` rules apply.
    """

    niche = models.ForeignKey(
        Niche, on_delete=models.CASCADE, null=True, blank=True, related_name="compliance_rules"
    )
    key = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=24, choices=ComplianceRuleKind.choices)
    severity = models.CharField(
        max_length=8,
        choices=Severity.choices,
        help_text="block: never send (quiet hours: hold until the window ends); rewrite: "
        "replace matches / append the disclaimer; warn: send and record.",
    )
    pattern = models.TextField(
        blank=True,
        help_text="Case-insensitive regular expression: the forbidden phrase, or the topic "
        "that requires the disclaimer.",
    )
    replacement = models.TextField(
        blank=True,
        help_text="forbidden_phrase + rewrite: the text that replaces each match; "
        "required_disclaimer: the disclaimer that must be present (appended on rewrite).",
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
        help_text='quiet_hours: {"start": "21:00", "end": "08:00", "reply_window_minutes": 30} '
        "in the contact's local time; consent_required: "
        '{"channels": [...], "requires": "opted_in", "reply_window_hours": 24}; '
        'opt_out_keywords: {"stop": [...], "start": [...], "help": [...]} (upper case, '
        "whole-message).",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Check that pattern, replacement and config have the shape the kind needs."""
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.kind in (
            ComplianceRuleKind.FORBIDDEN_PHRASE,
            ComplianceRuleKind.REQUIRED_DISCLAIMER,
        ):
            if not self.pattern:
                add("pattern", "This kind needs a pattern.")
            else:
                try:
                    re.compile(self.pattern, re.IGNORECASE)
                except re.error as exc:
                    add("pattern", f"Not a valid regular expression: {exc}.")
        needs_replacement = self.kind == ComplianceRuleKind.REQUIRED_DISCLAIMER or (
            self.kind == ComplianceRuleKind.FORBIDDEN_PHRASE and self.severity == Severity.REWRITE
        )
        if needs_replacement and not self.replacement.strip():
            add("replacement", "This kind and severity need a replacement text.")
        config = self.config if isinstance(self.config, dict) else None
        if config is None:
            add("config", "Config must be a JSON object.")
        elif self.kind == ComplianceRuleKind.QUIET_HOURS:
            for bound in ("start", "end"):
                if not _HH_MM.match(str(config.get(bound, ""))):
                    add("config", f'quiet_hours needs "{bound}" as "HH:MM" (24-hour clock).')
        elif self.kind == ComplianceRuleKind.CONSENT_REQUIRED:
            channels = config.get("channels")
            if not isinstance(channels, list) or not set(channels) <= set(Channel.values):
                add("config", f'consent_required needs "channels": a list of {Channel.values}.')
            if config.get("requires") != "opted_in":
                add("config", 'consent_required needs "requires": "opted_in".')
        elif self.kind == ComplianceRuleKind.OPT_OUT_KEYWORDS:
            for group in ("stop", "start", "help"):
                words = config.get(group)
                if not isinstance(words, list) or not all(
                    isinstance(w, str) and w.strip() and w == w.upper() for w in words
                ):
                    add("config", f'opt_out_keywords needs "{group}": a list of upper-case words.')
        if errors:
            raise ValidationError(errors)


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
    agent_name = models.CharField(
        max_length=50, blank=True, help_text="The assistant's name: the {agent_name} variable."
    )
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
    file = models.CharField(
        max_length=200, help_text="Path from the repository root: n8n/workflows/<key>.json."
    )
    niches = models.ManyToManyField(Niche, blank=True, related_name="workflow_templates")

    def __str__(self) -> str:
        return self.name


class PlatformTemplateCategory(models.TextChoices):
    UTILITY = "utility", "Utility"
    MARKETING = "marketing", "Marketing"
    AUTHENTICATION = "authentication", "Authentication"


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
    category = models.CharField(
        max_length=16,
        choices=PlatformTemplateCategory.choices,
        default=PlatformTemplateCategory.UTILITY,
        help_text="WhatsApp template category, as submitted to Meta.",
    )
    body = models.TextField(help_text="Text with {{1}}-style placeholders, as approved.")
    variables = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="The variable behind each placeholder: variables[0] fills {{1}}, and so on.",
    )
    is_approved = models.BooleanField(default=True)

    class Meta:
        ordering = ["channel", "purpose", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "name", "language"],
                condition=Q(organization__isnull=True),
                name="platformtemplate_shared_name",
            ),
            models.UniqueConstraint(
                fields=["organization", "channel", "name", "language"],
                condition=Q(organization__isnull=False),
                name="platformtemplate_org_name",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.name} ({self.language})"

    def clean(self) -> None:
        """Placeholders must be {{1}}..{{n}}, with one variable per placeholder."""
        numbers = sorted(set(whatsapp_placeholders(self.body or "")))
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationError(
                {"body": "Placeholders must be numbered {{1}}, {{2}}, ... in sequence."}
            )
        if len(self.variables or []) != len(numbers):
            raise ValidationError(
                {
                    "variables": f"The body has {len(numbers)} placeholder(s); list one variable for each."
                }
            )
