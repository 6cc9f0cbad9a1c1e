"""Revenue: invoices and payments, revenue attribution, plans and usage limits, pricing rules,
and the revenue-intelligence jobs (churn guard, lead resurrection, outreach sequences, lead
enrichment) with their run log.

Money is always a `Decimal` (two places) next to an ISO 4217 `currency`; amounts of
different currencies are never added together.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from apps.core.choices import Channel
from apps.core.models import TenantModel

ZERO = Decimal("0.00")


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=12, decimal_places=2, **kwargs)


# --- plans and subscriptions -------------------------------------------------------------------


class Plan(models.Model):
    """A plan tier. `key` is what `Organization.plan` holds (free, starter, growth, scale).

    Limits are upper bounds at the point of use (`apps.revenue.limits`); empty = unlimited.
    Seeded by migration; superusers edit them in the admin (other processes see an edit
    within `limits.PLAN_CACHE_SECONDS`).
    """

    key = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=60)
    description = models.TextField(blank=True)
    price = _money(validators=[MinValueValidator(ZERO)], default=ZERO)
    currency = models.CharField(max_length=3, default="USD")
    billing_period = models.CharField(
        max_length=8, choices=[("month", "Monthly"), ("year", "Yearly")], default="month"
    )
    max_operators = models.PositiveIntegerField(
        null=True, blank=True, help_text="Console members (any role). Empty: unlimited."
    )
    max_channels = models.PositiveIntegerField(
        null=True, blank=True, help_text="Channel connections. Empty: unlimited."
    )
    max_contacts = models.PositiveIntegerField(
        null=True, blank=True, help_text="Live (unmerged) contacts. Empty: unlimited."
    )
    max_decisions_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Agent decisions per calendar month. Empty: unlimited."
    )
    max_outbound_messages_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Outbound messages per day. Empty: unlimited."
    )
    ai_credits_per_month = models.PositiveIntegerField(
        default=0, help_text="AI credits granted each month (read by the decision engine)."
    )
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True, help_text="Offered to organizations.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "key"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="plan_price_not_negative")
        ]

    def __str__(self) -> str:
        return self.name


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"


class Subscription(models.Model):
    """The organization's subscription. Its plan is `Organization.plan` (a `Plan.key`): that
    field stays the one source of truth, readable by every app and the API; this row holds
    the billing state. Plan changes go through `subscription_change_plan` (history row)."""

    organization = models.OneToOneField(
        "tenancy.Organization",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="subscription",
    )
    status = models.CharField(
        max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    started_at = models.DateTimeField()
    current_period_start = models.DateField()
    current_period_end = models.DateField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.status}"


class SubscriptionChange(TenantModel):
    """One plan change: from, to, who and why (audit)."""

    from_plan = models.CharField(max_length=20)
    to_plan = models.CharField(max_length=20)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.from_plan} → {self.to_plan}"


# --- invoices ---------------------------------------------------------------------------------


class InvoiceSequence(models.Model):
    """The next invoice number of an organization. Row-locked while an invoice is numbered,
    inside the invoice's own transaction, so numbers are consecutive with no gap."""

    organization = models.OneToOneField(
        "tenancy.Organization",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="invoice_sequence",
    )
    prefix = models.CharField(max_length=20, default="INV-", blank=True)
    padding = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="Digits, zero-padded."
    )
    next_number = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])

    def __str__(self) -> str:
        return f"{self.prefix}{self.next_number:0{self.padding}d}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SENT = "sent", "Sent"
    OVERDUE = "overdue", "Overdue"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


OPEN_INVOICE_STATUSES = (InvoiceStatus.SENT, InvoiceStatus.OVERDUE)


class Invoice(TenantModel):
    """An invoice: numbered at creation, lines and totals fixed once sent, never deleted
    (void it instead, so the sequence keeps no gap)."""

    number = models.CharField(max_length=40)
    sequence_number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    company = models.ForeignKey(
        "crm.Company", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    deal = models.ForeignKey(
        "crm.Deal", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    bill_to_name = models.CharField(max_length=200, blank=True)
    bill_to_email = models.CharField(max_length=254, blank=True)
    bill_to_address = models.TextField(blank=True)
    currency = models.CharField(max_length=3)
    issue_date = models.DateField()
    due_date = models.DateField()
    subtotal = _money(default=ZERO)
    tax_total = _money(default=ZERO)
    total = _money(default=ZERO)
    amount_paid = _money(default=ZERO)
    notes = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-sequence_number"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "number"], name="invoice_org_number"),
            models.UniqueConstraint(
                fields=["organization", "sequence_number"], name="invoice_org_sequence"
            ),
            models.CheckConstraint(
                condition=Q(total__gte=0, subtotal__gte=0, tax_total__gte=0),
                name="invoice_totals_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0, amount_paid__lte=F("total")),
                name="invoice_paid_within_total",
            ),
            models.CheckConstraint(
                condition=Q(due_date__gte=F("issue_date")), name="invoice_due_after_issue"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "due_date"], name="invoice_org_status"),
            models.Index(
                fields=["due_date"],
                name="invoice_open_due",
                condition=Q(status__in=OPEN_INVOICE_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def balance_due(self) -> Decimal:
        return self.total - self.amount_paid


class InvoiceLine(TenantModel):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=300)
    product = models.CharField(max_length=100, blank=True)
    quantity = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("1"))
    unit_price = _money()
    tax_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=ZERO, help_text="Percent, e.g. 8.25."
    )
    amount = _money(help_text="quantity times unit price, rounded to cents.")
    tax_amount = _money(default=ZERO)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_position"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0, unit_price__gte=0, tax_rate__gte=0, tax_rate__lte=100),
                name="invoiceline_values",
            ),
        ]

    def __str__(self) -> str:
        return self.description


class PaymentMethod(models.TextChoices):
    CARD = "card", "Card"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CASH = "cash", "Cash"
    CHECK = "check", "Check"
    OTHER = "other", "Other"


class Payment(TenantModel):
    """Money received against an invoice (partial or full). A `reference` (the processor's
    id) is unique per invoice, so recording the same payment twice is refused."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = _money()
    currency = models.CharField(max_length=3)
    method = models.CharField(
        max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.OTHER
    )
    reference = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField()
    note = models.CharField(max_length=300, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.UniqueConstraint(
                fields=["invoice", "reference"],
                condition=~Q(reference=""),
                name="payment_invoice_reference",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


# --- revenue attribution -----------------------------------------------------------------------


class RevenueKind(models.TextChoices):
    DEAL_WON = "deal_won", "Deal won (booked)"
    INVOICE_PAID = "invoice_paid", "Invoice paid (collected)"


class RevenueEntry(TenantModel):
    """Revenue recognized against a deal: a won deal (booked) or a paid invoice (collected),
    with what brought it: the source channel, the campaign and the agent decisions that
    touched the deal. Booked and collected are separate measures (never added together)."""

    kind = models.CharField(max_length=16, choices=RevenueKind.choices)
    deal = models.ForeignKey(
        "crm.Deal", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, null=True, blank=True, related_name="revenue_entries"
    )
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    amount = _money()
    currency = models.CharField(max_length=3)
    recognized_at = models.DateTimeField()
    source = models.CharField(max_length=32, blank=True, help_text="Source channel.")
    campaign = models.CharField(max_length=100, blank=True)
    decision_ids = ArrayField(models.UUIDField(), default=list, blank=True)

    class Meta:
        verbose_name_plural = "revenue entries"
        ordering = ["-recognized_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["deal"], condition=Q(kind="deal_won"), name="revenue_one_per_won_deal"
            ),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(kind="invoice_paid"),
                name="revenue_one_per_paid_invoice",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "kind", "recognized_at"], name="revenue_org_kind_time"
            ),
            GinIndex(fields=["decision_ids"], name="revenue_decisions"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


# --- pricing rules ------------------------------------------------------------------------------


class PriceAction(models.TextChoices):
    BLOCK = "block", "Block the reply"
    REWRITE = "rewrite", "Rewrite with the allowed range"


class PriceRule(TenantModel):
    """The price range of one of the organization's offers (an appointment type or a
    product). An AI reply may not quote a price outside it (`apps.revenue.pricing`)."""

    name = models.CharField(max_length=100)
    appointment_type = models.ForeignKey(
        "bookings.AppointmentType",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    product = models.CharField(max_length=100, blank=True, help_text="A product or package name.")
    keywords = ArrayField(
        models.CharField(max_length=60),
        default=list,
        blank=True,
        help_text="Other words that name this offer in a reply (e.g. botox, tox).",
    )
    min_price = _money(validators=[MinValueValidator(ZERO)])
    max_price = _money(validators=[MinValueValidator(ZERO)])
    currency = models.CharField(max_length=3)
    action = models.CharField(
        max_length=8, choices=PriceAction.choices, default=PriceAction.REWRITE
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_price__gte=0, max_price__gte=F("min_price")),
                name="pricerule_range",
                violation_error_message="The maximum must be at least the minimum.",
            ),
            models.CheckConstraint(
                condition=(Q(appointment_type__isnull=False) & Q(product=""))
                | (Q(appointment_type__isnull=True) & ~Q(product="")),
                name="pricerule_one_offer",
                violation_error_message="Choose an appointment type or name a product (one).",
            ),
            models.UniqueConstraint(
                fields=["organization", "appointment_type"],
                condition=Q(appointment_type__isnull=False),
                name="pricerule_org_appttype",
            ),
            models.UniqueConstraint(
                "organization",
                Lower("product"),
                condition=~Q(product=""),
                name="pricerule_org_product",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.min_price}-{self.max_price} {self.currency}"


# --- job settings -------------------------------------------------------------------------------


class RevenueSettings(models.Model):
    """Per organization: what the revenue-intelligence jobs do (created with defaults)."""

    organization = models.OneToOneField(
        "tenancy.Organization",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="revenue_settings",
    )
    churn_guard_enabled = models.BooleanField(default=True)
    customer_silent_days = models.PositiveSmallIntegerField(
        default=60, help_text="A customer with no activity this long shows a churn signal."
    )
    missed_bookings_threshold = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1)],
        help_text="Cancelled or missed bookings within the lookback that signal churn.",
    )
    churn_lookback_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1)]
    )
    resurrection_enabled = models.BooleanField(
        default=False, help_text="Re-engage silent leads automatically (business-initiated)."
    )
    resurrection_silent_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1)]
    )
    resurrection_lead_statuses = ArrayField(
        models.CharField(max_length=16),
        default=list,
        blank=True,
        help_text="Lead statuses that count as dead or silent (default: new, contacted).",
    )
    resurrection_cooldown_days = models.PositiveSmallIntegerField(
        default=90, help_text="A contact is re-engaged at most once in this many days."
    )
    resurrection_sequence = models.ForeignKey(
        "Sequence", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outreach_daily_cap = models.PositiveIntegerField(
        default=200, help_text="Sequence messages per day for the whole organization."
    )
    enrichment_enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "revenue settings"
        verbose_name_plural = "revenue settings"

    def __str__(self) -> str:
        return f"Revenue settings of {self.organization_id}"


# --- outreach sequences ----------------------------------------------------------------------


class SequenceKind(models.TextChoices):
    OUTREACH = "outreach", "Outreach"
    RESURRECTION = "resurrection", "Lead resurrection"


class Sequence(TenantModel):
    """A multi-step message sequence. Contacts are enrolled by hand (API, admin), by the
    enrolment rules (`auto_enroll`), or by the lead-resurrection job. Every enrolment stops
    on a reply, an opt-out, or an exit rule."""

    name = models.CharField(max_length=100)
    kind = models.CharField(
        max_length=12, choices=SequenceKind.choices, default=SequenceKind.OUTREACH
    )
    is_active = models.BooleanField(default=True)
    auto_enroll = models.BooleanField(
        default=False, help_text="Enrol matching leads automatically (the enrolment rules)."
    )
    enroll_lead_statuses = ArrayField(
        models.CharField(max_length=16), default=list, blank=True, help_text="Empty: any."
    )
    enroll_lead_sources = ArrayField(
        models.CharField(max_length=32), default=list, blank=True, help_text="Empty: any."
    )
    enroll_tags = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="The contact has one of these tags. Empty: any.",
    )
    enroll_created_within_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Only leads created this recently."
    )
    exit_lead_statuses = ArrayField(
        models.CharField(max_length=16),
        default=list,
        blank=True,
        help_text="Stop when the lead reaches one of these (e.g. converted, disqualified).",
    )
    exit_on_booking = models.BooleanField(default=True, help_text="Stop when they book.")
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per day from this sequence. Empty: no own cap."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="sequence_org_name")
        ]

    def __str__(self) -> str:
        return self.name


class SequenceStep(TenantModel):
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    delay_hours = models.PositiveIntegerField(
        default=0, help_text="Wait after enrolment (first step) or after the previous step."
    )
    channel = models.CharField(
        max_length=16,
        choices=[
            ("auto", "The contact's usual channel"),
            *((c, label) for c, label in Channel.choices if c in ("sms", "whatsapp", "email")),
        ],
        help_text="auto: the channel they last wrote on, else SMS when they have a phone, "
        "else email.",
    )
    subject = models.CharField(max_length=200, blank=True, help_text="Email subject.")
    body = models.TextField(
        blank=True,
        help_text="Text with {first_name}, {business_name} and {agent_name}. Empty: the "
        "niche's prompt for the purpose below.",
    )
    template_purpose = models.CharField(
        max_length=32,
        default="reactivation",
        help_text="The message's purpose: picks the niche prompt when the body is empty, and "
        "the approved WhatsApp template outside the 24-hour window.",
    )

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "position"], name="sequencestep_position")
        ]

    def __str__(self) -> str:
        return f"{self.sequence_id} #{self.position} ({self.channel})"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class Enrollment(TenantModel):
    """One contact going through a sequence. `next_step` is the position still to send."""

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(
        "crm.Lead", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    next_step = models.PositiveSmallIntegerField(default=1)
    next_send_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=40, blank=True)
    enrolled_by = models.CharField(max_length=100, blank=True, help_text="rule, resurrection...")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["sequence", "contact"],
                condition=Q(status="active"),
                name="enrollment_one_active",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_send_at"], name="enrollment_due", condition=Q(status="active")
            ),
            models.Index(fields=["sequence", "contact"], name="enrollment_seq_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.sequence_id} ({self.status})"


class StepSendStatus(models.TextChoices):
    SENT = "sent", "Queued for sending"
    SKIPPED = "skipped", "Skipped"


class EnrollmentStepSend(TenantModel):
    """What happened to one step of one enrolment, once (unique): the send is idempotent."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="sends")
    position = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=16)
    status = models.CharField(max_length=8, choices=StepSendStatus.choices)
    reason = models.CharField(max_length=200, blank=True)
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["enrollment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "position"], name="stepsend_once")
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="stepsend_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.enrollment_id} #{self.position}: {self.status}"


# --- churn guard, enrichment --------------------------------------------------------------------


class ChurnSignal(models.TextChoices):
    STALE_DEAL = "stale_deal", "Deal idle past its stage limit"
    CUSTOMER_SILENT = "customer_silent", "Customer silent"
    MISSED_BOOKINGS = "missed_bookings", "Cancelled or missed bookings"
    OVERDUE_INVOICE = "overdue_invoice", "Overdue invoice"
    CANCEL_INTENT = "cancel_intent", "Asked to cancel"


class ChurnAlert(TenantModel):
    """One churn-guard finding, once per episode (`anchor`): the task it created for the
    owner. Running the guard again finds the same anchor and does nothing."""

    signal = models.CharField(max_length=20, choices=ChurnSignal.choices)
    deal = models.ForeignKey(
        "crm.Deal", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    subject_id = models.UUIDField()
    anchor = models.CharField(max_length=64, help_text="What makes this episode this one.")
    task = models.ForeignKey(
        "crm.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "signal", "subject_id", "anchor"], name="churnalert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.signal} {self.subject_id}"


class ContactEnrichment(TenantModel):
    """When a contact was last enriched and what was found (skip unchanged contacts)."""

    contact = models.OneToOneField(
        "crm.Contact", on_delete=models.CASCADE, related_name="enrichment"
    )
    enriched_at = models.DateTimeField()
    domain = models.CharField(max_length=200, blank=True)
    company_set = models.BooleanField(default=False)
    timezone_set = models.CharField(max_length=64, blank=True)
    duplicates_found = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.contact_id} @ {self.enriched_at:%Y-%m-%d %H:%M}"


class DuplicateStatus(models.TextChoices):
    OPEN = "open", "Open"
    DISMISSED = "dismissed", "Dismissed"
    MERGED = "merged", "Merged"


class DuplicateSuggestion(TenantModel):
    """Two contacts that may be one person (a pair is stored once, smaller id first)."""

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200)
    score = models.PositiveSmallIntegerField(help_text="0-100: how sure.")
    status = models.CharField(
        max_length=10, choices=DuplicateStatus.choices, default=DuplicateStatus.OPEN
    )

    class Meta:
        ordering = ["-score", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["contact", "other"], name="duplicate_pair_once"),
            models.CheckConstraint(
                condition=Q(contact__lt=F("other")), name="duplicate_pair_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} ~ {self.other_id} ({self.score})"


# --- run log --------------------------------------------------------------------------------------


class JobRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class JobRun(models.Model):
    """One run of a revenue-intelligence job: when, how much it looked at and did, errors."""

    id = models.BigAutoField(primary_key=True)
    job = models.CharField(max_length=40)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=JobRunStatus.choices, default=JobRunStatus.RUNNING
    )
    processed = models.PositiveIntegerField(default=0, help_text="Rows looked at.")
    created = models.PositiveIntegerField(default=0, help_text="Things done (tasks, sends...).")
    errors = models.PositiveIntegerField(default=0)
    error_messages = models.JSONField(default=list, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job", "-started_at"], name="jobrun_job_time")]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"
