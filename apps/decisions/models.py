"""Decisions: what the agent proposed for a contact and why, what it cost, what came of it.

- `Decision`: one answer of the decision API (or of a scheduled follow-up): the guarded
  action list, the engine that produced it, the compliance report, latency, tokens, credits.
  `event_id` makes a decision idempotent per contact: the same event returns the same row.
- `DecisionOutcome`: a later reply, booking or won deal linked back to the decision that
  preceded it (written by `decision_outcome_record`, from a beat job), for reporting.
- `ConversationMemory`: the agent's memory of one contact (recent turns, a rolling summary,
  extracted facts such as offered slots and the question waiting for an answer).
- `CreditAccount` / `CreditLedgerEntry`: the organization's AI credit balance and every
  change to it (plan grants and their expiry, top-ups, decisions). See `apps.decisions.credits`.
- `ScheduledAction`: work `execute: true` deferred to later (a follow-up decision, a send
  held by quiet hours); a beat job runs the due ones.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apps.core.models import TenantModel


class Trigger(models.TextChoices):
    MESSAGE_RECEIVED = "message.received", "Message received"
    LEAD_CREATED = "lead.created", "Lead created"
    BOOKING_NO_SHOW = "booking.no_show", "Booking no-show"
    DEAL_WON = "deal.won", "Deal won"
    FOLLOW_UP_DUE = "follow_up_due", "Follow-up due"
    MANUAL = "manual", "Manual"


class Engine(models.TextChoices):
    RULES = "rules", "Rules (deterministic, offline)"
    LLM = "llm", "LLM (OpenAI-compatible)"


class Decision(TenantModel):
    """One decision: the actions proposed for a contact after a trigger, already guarded."""

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="decisions")
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    event_id = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        help_text="The caller's event id; the same id for the same contact returns this decision.",
    )
    message = models.TextField(blank=True, help_text="The contact's message the decision answers.")
    intent = models.CharField(max_length=32, blank=True, help_text="What the engine understood.")
    inputs_digest = models.CharField(
        max_length=64, help_text="sha256 of the decision inputs (context snapshot)."
    )
    context_summary = models.JSONField(default=dict, blank=True)
    engine_requested = models.CharField(max_length=8, choices=Engine.choices)
    engine = models.CharField(
        max_length=8, choices=Engine.choices, help_text="The engine whose actions were used."
    )
    fallback_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the requested engine was not used."
    )
    actions = models.JSONField(default=list)
    action_types = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    rationale = models.TextField(blank=True)
    compliance = models.JSONField(
        default=dict,
        help_text="{rules_checked, interventions: [{rule, action_index, outcome, why}]}",
    )
    intervention_count = models.PositiveSmallIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    credits_used = models.PositiveIntegerField(default=0)
    trace_id = models.CharField(max_length=32, blank=True)
    execution = models.JSONField(
        null=True, blank=True, help_text="`execute: true` results, one per action."
    )
    executed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="decision_org_created"),
            models.Index(fields=["contact", "-created_at"], name="decision_contact_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "contact", "event_id"],
                condition=Q(event_id__isnull=False),
                name="decision_org_contact_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.trigger} → {', '.join(self.action_types) or 'nothing'}"


class OutcomeKind(models.TextChoices):
    REPLY_RECEIVED = "reply_received", "Reply received"
    BOOKING_MADE = "booking_made", "Booking made"
    DEAL_WON = "deal_won", "Deal won"


class DecisionOutcome(TenantModel):
    """Something good that happened after a decision (the last one before it, within a week)."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="outcomes")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=OutcomeKind.choices)
    subject_type = models.CharField(max_length=20, help_text="message, booking or deal.")
    subject_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "subject_id"], name="outcome_org_kind_subject"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "kind", "-occurred_at"], name="outcome_org")
        ]

    def __str__(self) -> str:
        return f"{self.kind} after {self.decision_id}"


class ConversationMemory(TenantModel):
    """The agent's memory of one contact, rewritten after every decision.

    `turns`: the last exchanges `[{at, trigger, intent, in, out}]`; `facts`: what the engine
    extracted and needs next time (`greeted`, `pending_question`, `offered_slots`,
    `objections`, `follow_ups`, `unclear_streak`, `answers`); `summary`: a rolling one-paragraph
    summary built from the facts.
    """

    contact = models.OneToOneField(
        "crm.Contact", on_delete=models.CASCADE, related_name="decision_memory"
    )
    summary = models.TextField(blank=True)
    facts = models.JSONField(default=dict, blank=True)
    turns = models.JSONField(default=list, blank=True)
    decision_count = models.PositiveIntegerField(default=0)
    last_intent = models.CharField(max_length=32, blank=True)
    last_decision_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "conversation memories"

    def __str__(self) -> str:
        return f"Memory of {self.contact_id}"


class CreditAccount(TenantModel):
    """The organization's AI credits: the plan's monthly allowance and purchased top-ups.

    Plan credits expire at the end of their month; top-ups never expire and are used after
    the plan credits. Balances can never go negative (check constraints).
    """

    plan_balance = models.IntegerField(default=0)
    topup_balance = models.IntegerField(default=0)
    plan_period = models.CharField(
        max_length=7, blank=True, help_text="The month (YYYY-MM) of the current plan grant."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="creditaccount_one_per_org"),
            models.CheckConstraint(
                condition=Q(plan_balance__gte=0, topup_balance__gte=0),
                name="creditaccount_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.balance} credits"

    @property
    def balance(self) -> int:
        return self.plan_balance + self.topup_balance


class LedgerKind(models.TextChoices):
    PLAN_GRANT = "plan_grant", "Plan grant"
    PLAN_EXPIRY = "plan_expiry", "Unused plan credits expired"
    TOP_UP = "top_up", "Top-up"
    DECISION = "decision", "Decision"
    ADJUSTMENT = "adjustment", "Adjustment"


class CreditLedgerEntry(TenantModel):
    """One change to an organization's credits; the balances after it."""

    kind = models.CharField(max_length=12, choices=LedgerKind.choices)
    amount = models.IntegerField(help_text="Positive adds credits, negative uses them.")
    plan_balance_after = models.IntegerField()
    topup_balance_after = models.IntegerField()
    decision = models.ForeignKey(
        Decision, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    period = models.CharField(max_length=7, blank=True, help_text="Plan grants: YYYY-MM.")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name_plural = "credit ledger entries"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="ledger_org_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "period"],
                condition=Q(kind="plan_grant"),
                name="ledger_one_plan_grant_per_period",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d}"


class ScheduledKind(models.TextChoices):
    SEND_MESSAGE = "send_message", "Send a message"
    FOLLOW_UP = "follow_up", "Follow-up decision"


class ScheduledStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledAction(TenantModel):
    """An executed action that takes effect later (`execute: true`): a held send or a follow-up."""

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    decision = models.ForeignKey(
        Decision, on_delete=models.SET_NULL, null=True, blank=True, related_name="scheduled"
    )
    kind = models.CharField(max_length=16, choices=ScheduledKind.choices)
    due_at = models.DateTimeField()
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=ScheduledStatus.choices, default=ScheduledStatus.PENDING
    )
    result = models.JSONField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(
                fields=["due_at"], name="scheduled_pending_due", condition=Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.due_at:%Y-%m-%d %H:%M}"
