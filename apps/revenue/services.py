"""Revenue write actions: plans and subscriptions, invoices (numbering, sending, voiding),
payments, revenue attribution, sequence enrolments and per-organization job settings.

Every action runs in one transaction and emits its events there. Objects passed in must
belong to `organization` (a foreign one is `NotFound`, naming the field).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from collections.abc import Sequence as SequenceType
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.errors import Conflict, NotFound, Unprocessable
from apps.events.services import emit
from apps.revenue.limits import plan_cache_clear
from apps.revenue.models import (
    ZERO,
    Enrollment,
    EnrollmentStatus,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Plan,
    RevenueEntry,
    RevenueKind,
    RevenueSettings,
    Sequence,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from apps.revenue.money import cents, invalid, parse_amount, parse_currency

logger = logging.getLogger(__name__)

MAX_LINES = 100
DEFAULT_DUE_DAYS = 14
QUANTITY_PLACES = Decimal("0.001")
ATTRIBUTION_LOOKBACK = timedelta(days=90)


def _not_found(field: str, what: str) -> NotFound:
    return NotFound(f"{field}: {what} not found.", details={field: [f"{what} not found."]})


def _require_same_organization(organization, obj, field: str) -> None:
    if obj is not None and obj.organization_id != organization.pk:
        raise _not_found(field, obj._meta.verbose_name.capitalize())


def _local_today(organization) -> date:
    return timezone.now().astimezone(organization.tz).date()


# --- plans and subscriptions -------------------------------------------------------------------


@transaction.atomic
def subscription_ensure(*, organization, now: datetime | None = None) -> Subscription:
    """The organization's subscription row, created (active, monthly period) when missing.
    Race-safe and idempotent."""
    now = now or timezone.now()
    today = now.astimezone(organization.tz).date()
    Subscription.objects.bulk_create(
        [
            Subscription(
                organization=organization,
                status=SubscriptionStatus.ACTIVE,
                started_at=now,
                current_period_start=today,
                current_period_end=today + timedelta(days=30),
            )
        ],
        ignore_conflicts=True,
    )
    return Subscription.objects.get(organization=organization)


@transaction.atomic
def subscription_change_plan(
    *, organization, plan_key: str, changed_by=None, reason: str = ""
) -> Subscription:
    """Move the organization to another plan: `Organization.plan` (read by every app and the
    API) changes, the change is recorded, and the new limits apply at once (a downgrade
    below current usage refuses further growth; nothing existing is removed). Idempotent:
    the current plan changes nothing."""
    from apps.tenancy.models import Organization

    plan = Plan.objects.filter(key=plan_key, is_active=True).first()
    if plan is None:
        raise invalid("plan", f"No active plan {plan_key!r}.")
    subscription = subscription_ensure(organization=organization)
    current = Organization.objects.select_for_update().get(pk=organization.pk)
    if current.plan == plan.key:
        return subscription
    SubscriptionChange.objects.create(
        organization=organization,
        from_plan=current.plan,
        to_plan=plan.key,
        changed_by=changed_by,
        reason=(reason or "")[:200],
    )
    Organization.objects.filter(pk=organization.pk).update(plan=plan.key, updated_at=timezone.now())
    organization.plan = plan.key
    if subscription.status == SubscriptionStatus.CANCELLED:
        subscription.status, subscription.cancelled_at = SubscriptionStatus.ACTIVE, None
        subscription.save(update_fields=["status", "cancelled_at", "updated_at"])
    return subscription


@transaction.atomic
def plan_update(*, plan: Plan, data: Mapping) -> Plan:
    """Change a plan's price or limits (superusers). Takes effect at once in this process,
    within `limits.PLAN_CACHE_SECONDS` in the others."""
    editable = {f.name for f in Plan._meta.concrete_fields} - {"id", "key", "updated_at"}
    unknown = set(data) - editable
    if unknown:
        raise invalid(sorted(unknown)[0], "Not a plan field.")
    for key, value in data.items():
        setattr(plan, key, value)
    plan.full_clean()
    plan.save()
    transaction.on_commit(plan_cache_clear)
    plan_cache_clear()
    return plan


def revenue_settings_for(*, organization) -> RevenueSettings:
    """The organization's job settings (created with the defaults when missing)."""
    settings_, _ = RevenueSettings.objects.get_or_create(organization=organization)
    return settings_


# --- invoices ---------------------------------------------------------------------------------


def invoice_event_data(invoice: Invoice, **extra) -> dict:
    return {
        "invoice_id": str(invoice.id),
        "number": invoice.number,
        "status": invoice.status,
        "total": str(invoice.total),
        "amount_paid": str(invoice.amount_paid),
        "balance_due": str(invoice.balance_due),
        "currency": invoice.currency,
        "contact_id": str(invoice.contact_id) if invoice.contact_id else None,
        "deal_id": str(invoice.deal_id) if invoice.deal_id else None,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        **extra,
    }


def _emit_invoice(organization, invoice: Invoice, type_: str, **extra) -> None:
    emit(
        organization=organization,
        type=type_,
        subject_type="invoice",
        subject_id=invoice.id,
        data=invoice_event_data(invoice, **extra),
    )


@dataclass(frozen=True)
class CleanLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    product: str

    @property
    def amount(self) -> Decimal:
        return cents(self.quantity * self.unit_price)

    @property
    def tax_amount(self) -> Decimal:
        return cents(self.amount * self.tax_rate / 100)


def _decimal(value, field: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise invalid(field, 'Give a number, e.g. "2.5".')
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise invalid(field, "Not a number.") from None
    if not number.is_finite():
        raise invalid(field, "Not a number.")
    return number


def _clean_lines(lines) -> list[CleanLine]:
    if isinstance(lines, Mapping | str) or not isinstance(lines, SequenceType) or not lines:
        raise invalid("lines", "Give at least one line.")
    if len(lines) > MAX_LINES:
        raise invalid("lines", f"At most {MAX_LINES} lines.")
    cleaned = []
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, Mapping):
            raise invalid(where, "Expected an object.")
        unknown = set(line) - {"description", "quantity", "unit_price", "tax_rate", "product"}
        if unknown:
            raise invalid(f"{where}.{sorted(unknown)[0]}", "Unknown field.")
        description = " ".join(str(line.get("description") or "").split())
        if not description or len(description) > 300 or "\x00" in description:
            raise invalid(f"{where}.description", "1 to 300 characters.")
        quantity = _decimal(line.get("quantity", 1), f"{where}.quantity")
        if quantity <= 0 or quantity != quantity.quantize(QUANTITY_PLACES) or quantity >= 10**7:
            raise invalid(f"{where}.quantity", "More than zero, at most 3 decimal places.")
        if "unit_price" not in line:
            raise invalid(f"{where}.unit_price", "This field is required.")
        unit_price = parse_amount(line["unit_price"], f"{where}.unit_price")
        tax_rate = _decimal(line.get("tax_rate", 0), f"{where}.tax_rate")
        if not (0 <= tax_rate <= 100) or tax_rate != tax_rate.quantize(Decimal("0.01")):
            raise invalid(f"{where}.tax_rate", "A percentage from 0 to 100, two decimals at most.")
        product = str(line.get("product") or "").strip()[:100]
        clean = CleanLine(description, quantity, unit_price, tax_rate, product)
        if clean.amount + clean.tax_amount > Decimal("9999999999.99"):
            raise invalid(f"{where}.unit_price", "Too large.")
        cleaned.append(clean)
    return cleaned


def _next_invoice_number(organization) -> tuple[int, str]:
    """Take the organization's next invoice number. The sequence row stays locked until the
    caller's transaction ends: concurrent invoices queue here, and a rolled-back invoice
    gives its number back (no gap)."""
    sequence = InvoiceSequence.objects.select_for_update().filter(organization=organization).first()
    if sequence is None:
        InvoiceSequence.objects.bulk_create(
            [InvoiceSequence(organization=organization)], ignore_conflicts=True
        )
        sequence = InvoiceSequence.objects.select_for_update().get(organization=organization)
    number = sequence.next_number
    InvoiceSequence.objects.filter(pk=sequence.pk).update(next_number=F("next_number") + 1)
    return number, f"{sequence.prefix}{number:0{sequence.padding}d}"


def _totals(lines: list[CleanLine]) -> tuple[Decimal, Decimal, Decimal]:
    subtotal = sum((line.amount for line in lines), ZERO)
    tax = sum((line.tax_amount for line in lines), ZERO)
    return subtotal, tax, subtotal + tax


@transaction.atomic
def invoice_create(
    *,
    organization,
    lines,
    contact=None,
    company=None,
    deal=None,
    currency: str | None = None,
    issue_date: date | None = None,
    due_date: date | None = None,
    notes: str = "",
    bill_to_name: str = "",
    bill_to_email: str = "",
    bill_to_address: str = "",
    created_by=None,
    actor: str = "",
) -> Invoice:
    """Create a draft invoice with its lines, numbered from the organization's sequence
    (gap-free under concurrency), and emit `invoice.created`. Not idempotent (the API makes
    it so with Idempotency-Key).

    Totals: each line is quantity times unit price rounded half-up to cents; its tax is that
    amount times the tax rate, rounded the same way; total = subtotal + tax. The currency defaults
    to the deal's, else the organization's; the due date to 14 days after the issue date.
    """
    for obj, field in ((contact, "contact_id"), (company, "company_id"), (deal, "deal_id")):
        _require_same_organization(organization, obj, field)
    cleaned = _clean_lines(lines)
    if contact is None and deal is not None:
        contact = deal.contact
    if company is None:
        company = (contact.company if contact is not None else None) or (
            deal.company if deal is not None else None
        )
    currency = parse_currency(
        currency, default=deal.currency if deal is not None else organization.currency
    )
    if deal is not None and deal.currency != currency and deal.amount is not None:
        raise invalid("currency", f"The deal is in {deal.currency}; invoice it in the same.")
    issue_date = issue_date or _local_today(organization)
    due_date = due_date or issue_date + timedelta(days=DEFAULT_DUE_DAYS)
    if due_date < issue_date:
        raise invalid("due_date", "Must be on or after the issue date.")
    notes = str(notes or "")
    if len(notes) > 5000 or "\x00" in notes:
        raise invalid("notes", "At most 5,000 characters.")
    subtotal, tax, total = _totals(cleaned)
    sequence_number, number = _next_invoice_number(organization)
    invoice = Invoice.objects.create(
        organization=organization,
        number=number,
        sequence_number=sequence_number,
        status=InvoiceStatus.DRAFT,
        contact=contact,
        company=company,
        deal=deal,
        bill_to_name=(
            bill_to_name or (contact.name if contact else "") or (company.name if company else "")
        )[:200],
        bill_to_email=(bill_to_email or (contact.email if contact else "") or "")[:254],
        bill_to_address=str(bill_to_address or "")[:2000],
        currency=currency,
        issue_date=issue_date,
        due_date=due_date,
        subtotal=subtotal,
        tax_total=tax,
        total=total,
        notes=notes,
        created_by=created_by,
        actor=(actor or "")[:100],
    )
    InvoiceLine.objects.bulk_create(
        [
            InvoiceLine(
                organization=organization,
                invoice=invoice,
                position=position,
                description=line.description,
                product=line.product,
                quantity=line.quantity,
                unit_price=line.unit_price,
                tax_rate=line.tax_rate,
                amount=line.amount,
                tax_amount=line.tax_amount,
            )
            for position, line in enumerate(cleaned, start=1)
        ]
    )
    _emit_invoice(organization, invoice, "invoice.created")
    return invoice


def _locked_invoice(organization, invoice: Invoice) -> Invoice:
    _require_same_organization(organization, invoice, "invoice_id")
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    locked.organization = organization
    return locked


def _invoice_text(invoice: Invoice) -> str:
    from apps.revenue.money import format_money

    lines = [
        f"Invoice {invoice.number} from {invoice.organization.name}",
        f"Amount due: {format_money(invoice.balance_due, invoice.currency)}",
        f"Due date: {invoice.due_date:%B %d, %Y}",
        "",
    ]
    lines += [
        f"- {line.description}: {format_money(line.amount, invoice.currency)}"
        for line in invoice.lines.all()
    ]
    if invoice.notes:
        lines += ["", invoice.notes]
    return "\n".join(lines)


@transaction.atomic
def invoice_send(
    *, organization, invoice: Invoice, deliver: bool = False, sent_by=None, actor: str = ""
) -> Invoice:
    """Issue a draft invoice (draft → sent) and emit `invoice.sent`; with `deliver`, also
    queue it to the contact by email through `message_send` (refused, with nothing written,
    when that is not possible). Idempotent: a sent or overdue invoice is returned unchanged
    (and not delivered again). A paid or void invoice is a Conflict."""
    invoice = _locked_invoice(organization, invoice)
    if invoice.status in (InvoiceStatus.SENT, InvoiceStatus.OVERDUE):
        return invoice
    if invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(
            f"Invoice {invoice.number} is {invoice.status}; it cannot be sent.",
            code=f"invoice_{invoice.status}",
        )
    if deliver:
        from apps.conversations.models import SenderKind
        from apps.conversations.services import message_send

        if invoice.contact is None:
            raise invalid("deliver", "The invoice has no contact to deliver it to.")
        message_send(
            organization=organization,
            contact=invoice.contact,
            channel="email",
            subject=f"Invoice {invoice.number}",
            text=_invoice_text(invoice),
            sender_kind=SenderKind.OPERATOR if sent_by else SenderKind.SYSTEM,
            sender_user=sent_by,
        )
    invoice.status, invoice.sent_at = InvoiceStatus.SENT, timezone.now()
    invoice.save(update_fields=["status", "sent_at", "updated_at"])
    _emit_invoice(organization, invoice, "invoice.sent")
    return invoice


@transaction.atomic
def invoice_void(
    *, organization, invoice: Invoice, reason: str = "", voided_by=None, actor: str = ""
) -> Invoice:
    """Void an unpaid invoice (its number stays used) and emit `invoice.voided`. Idempotent
    for a void invoice. A paid invoice, or one with payments, is a Conflict."""
    invoice = _locked_invoice(organization, invoice)
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    if invoice.status == InvoiceStatus.PAID or invoice.amount_paid > 0:
        raise Conflict(
            f"Invoice {invoice.number} has payments recorded; refund them before voiding.",
            code="invoice_has_payments",
        )
    reason = " ".join(str(reason or "").split())
    if len(reason) > 200:
        raise invalid("reason", "At most 200 characters.")
    invoice.status, invoice.voided_at, invoice.void_reason = (
        InvoiceStatus.VOID,
        timezone.now(),
        reason,
    )
    invoice.save(update_fields=["status", "voided_at", "void_reason", "updated_at"])
    _emit_invoice(organization, invoice, "invoice.voided", reason=reason)
    return invoice


@transaction.atomic
def payment_record(
    *,
    organization,
    invoice: Invoice,
    amount,
    currency: str | None = None,
    method: str = PaymentMethod.OTHER,
    reference: str = "",
    received_at: datetime | None = None,
    note: str = "",
    recorded_by=None,
    actor: str = "",
) -> Payment:
    """Record money received against a sent or overdue invoice; emit `payment.received`.
    A payment that settles the balance marks the invoice paid, emits `invoice.paid` and
    records the collected revenue (attributed). Partial payments leave it open.

    Refused: a draft, paid or void invoice (Conflict); another currency or more than the
    balance due (422); a `reference` already recorded on this invoice (Conflict, with the
    payment's id). Not idempotent otherwise (use a reference, or Idempotency-Key).
    """
    invoice = _locked_invoice(organization, invoice)
    if invoice.status not in (InvoiceStatus.SENT, InvoiceStatus.OVERDUE):
        hint = {"draft": " Send it first.", "paid": " It is paid in full.", "void": ""}
        raise Conflict(
            f"Invoice {invoice.number} is {invoice.status}; no payment can be recorded."
            + hint.get(invoice.status, ""),
            code=f"invoice_{invoice.status}",
        )
    amount = parse_amount(amount, "amount", allow_zero=False)
    currency = parse_currency(currency, default=invoice.currency)
    if currency != invoice.currency:
        raise Unprocessable(
            f"currency: the invoice is in {invoice.currency}, not {currency}.",
            code="currency_mismatch",
            details={"currency": [f"Must be {invoice.currency}."]},
        )
    if amount > invoice.balance_due:
        raise Unprocessable(
            f"amount: {amount} is more than the balance due ({invoice.balance_due} "
            f"{invoice.currency}).",
            code="overpayment",
            details={"amount": [f"At most {invoice.balance_due}."]},
        )
    if method not in PaymentMethod.values:
        raise invalid("method", f"One of {', '.join(PaymentMethod.values)}.")
    reference = str(reference or "").strip()
    if len(reference) > 100 or "\x00" in reference:
        raise invalid("reference", "At most 100 characters.")
    if received_at is not None and timezone.is_naive(received_at):
        raise invalid("received_at", "Use an ISO 8601 time with a UTC offset.")
    now = timezone.now()
    if reference:
        existing = Payment.objects.filter(invoice=invoice, reference=reference).first()
        if existing is not None:
            raise Conflict(
                f"reference: payment {reference!r} is already recorded on this invoice.",
                code="duplicate_payment",
                details={"reference": [reference], "payment_id": str(existing.pk)},
            )
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                organization=organization,
                invoice=invoice,
                amount=amount,
                currency=currency,
                method=method,
                reference=reference,
                received_at=received_at or now,
                note=str(note or "")[:300],
                recorded_by=recorded_by,
                actor=(actor or "")[:100],
            )
    except IntegrityError:
        raise Conflict(
            f"reference: payment {reference!r} is already recorded on this invoice.",
            code="duplicate_payment",
            details={"reference": [reference]},
        ) from None
    invoice.amount_paid += amount
    fields = ["amount_paid", "updated_at"]
    if invoice.amount_paid == invoice.total:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID, payment.received_at
        fields += ["status", "paid_at"]
    invoice.save(update_fields=fields)
    emit(
        organization=organization,
        type="payment.received",
        subject_type="invoice",
        subject_id=invoice.id,
        data={
            "payment_id": str(payment.id),
            "invoice_id": str(invoice.id),
            "number": invoice.number,
            "amount": str(amount),
            "currency": currency,
            "method": method,
            "reference": reference,
            "received_at": payment.received_at,
            "amount_paid": str(invoice.amount_paid),
            "balance_due": str(invoice.balance_due),
            "invoice_status": invoice.status,
        },
    )
    if invoice.status == InvoiceStatus.PAID:
        revenue_record_paid_invoice(organization=organization, invoice=invoice)
        _emit_invoice(organization, invoice, "invoice.paid")
    return payment


def invoices_mark_overdue(*, today: date | None = None, limit: int = 500) -> list:
    """Sent invoices past their due date (in their organization's time zone) become overdue,
    each with `invoice.overdue`, once. Idempotent; returns the invoices moved."""
    from apps.tenancy.models import Organization

    moved = []
    utc_today = (today or timezone.now().date()) + timedelta(days=1)
    candidates = list(
        Invoice.objects.filter(status=InvoiceStatus.SENT, due_date__lt=utc_today)
        .order_by("due_date")
        .values_list("pk", "organization_id")[:limit]
    )
    organizations = Organization.objects.in_bulk({org for _, org in candidates})
    for pk, organization_id in candidates:
        organization = organizations[organization_id]
        local_today = today or _local_today(organization)
        with transaction.atomic():
            invoice = (
                Invoice.objects.select_for_update()
                .filter(pk=pk, status=InvoiceStatus.SENT, due_date__lt=local_today)
                .first()
            )
            if invoice is None:
                continue
            invoice.status, invoice.overdue_at = InvoiceStatus.OVERDUE, timezone.now()
            invoice.save(update_fields=["status", "overdue_at", "updated_at"])
            _emit_invoice(organization, invoice, "invoice.overdue")
            moved.append(invoice)
    return moved


# --- revenue attribution -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    source: str
    campaign: str
    decision_ids: tuple


def decisions_touching(
    *, organization, contact_id, start: datetime, end: datetime, deal_id=None
) -> list:
    """Ids of the agent decisions that touched a sale: those made for the contact between
    `start` (the lead or deal opening) and `end` (the sale), plus any decision the
    decisions app linked to the won deal as its outcome. Oldest first, at most 200."""
    if contact_id is None:
        return []
    from apps.decisions.models import Decision, DecisionOutcome

    ids = list(
        Decision.objects.filter(
            organization=organization,
            contact_id=contact_id,
            created_at__gte=start,
            created_at__lte=end,
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:200]
    )
    if deal_id is not None:
        linked = DecisionOutcome.objects.filter(
            organization=organization, kind="deal_won", subject_id=str(deal_id)
        ).values_list("decision_id", flat=True)
        ids += [d for d in linked if d not in ids]
    return ids[:200]


def revenue_attribution(*, organization, deal=None, contact=None, at: datetime) -> Attribution:
    """What brought a sale: source channel (the lead's, else the deal's, else the contact's),
    campaign (the lead's) and the decisions made for the contact between the lead (or deal)
    opening and `at`."""
    from apps.crm.models import Lead

    lead = None
    if deal is not None:
        contact = contact or deal.contact
        lead = deal.lead
    if lead is None and contact is not None:
        lead = (
            Lead.objects.filter(organization=organization, contact=contact, created_at__lte=at)
            .order_by("-created_at")
            .first()
        )
    source = (
        (lead.source if lead else "")
        or (deal.source if deal is not None else "")
        or (contact.source if contact is not None else "")
    )
    campaign = lead.campaign if lead else ""
    opened = min(
        [x.created_at for x in (lead, deal) if x is not None], default=at - ATTRIBUTION_LOOKBACK
    )
    decision_ids = decisions_touching(
        organization=organization,
        contact_id=contact.pk if contact is not None else None,
        start=opened,
        end=at,
        deal_id=deal.pk if deal is not None else None,
    )
    return Attribution(source or "unknown", campaign, tuple(decision_ids))


def revenue_record_paid_invoice(*, organization, invoice: Invoice) -> RevenueEntry:
    """Record a fully paid invoice as collected revenue, attributed. Idempotent (one entry
    per invoice)."""
    existing = RevenueEntry.objects.filter(invoice=invoice, kind=RevenueKind.INVOICE_PAID).first()
    if existing is not None:
        return existing
    at = invoice.paid_at or timezone.now()
    attribution = revenue_attribution(
        organization=organization, deal=invoice.deal, contact=invoice.contact, at=at
    )
    return RevenueEntry.objects.create(
        organization=organization,
        kind=RevenueKind.INVOICE_PAID,
        invoice=invoice,
        deal=invoice.deal,
        contact=invoice.contact,
        amount=invoice.total,
        currency=invoice.currency,
        recognized_at=at,
        source=attribution.source[:32],
        campaign=attribution.campaign[:100],
        decision_ids=list(attribution.decision_ids),
    )


@dataclass
class RevenueSync:
    processed: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    resume_after: tuple | None = None  # (updated_at, id) of the last deal when `limit` stopped


def revenue_sync_won_deals(
    *, since: datetime | None = None, after: tuple | None = None, limit: int = 2000
) -> RevenueSync:
    """Keep booked revenue equal to the won deals: a won deal with an amount gets one entry
    (attributed), a changed amount or currency updates it, a deal no longer won (or without
    an amount) loses it. Looks at up to `limit` deals updated since `since` (all when None)
    or strictly after the `(updated_at, id)` position `after`, oldest change first;
    `resume_after` is where to continue when there were more. Idempotent."""
    from apps.crm.models import Deal, DealStatus

    result = RevenueSync()
    deals = Deal.objects.select_related("lead", "contact", "organization").order_by(
        "updated_at", "id"
    )
    if since is not None:
        deals = deals.filter(updated_at__gte=since)
    if after is not None:
        deals = deals.filter(Q(updated_at__gt=after[0]) | Q(updated_at=after[0], id__gt=after[1]))
    batch = list(deals[:limit])
    if len(batch) == limit:
        result.resume_after = (batch[-1].updated_at, batch[-1].pk)
    won = [d for d in batch if d.status == DealStatus.WON and d.amount is not None]
    entries = {
        e.deal_id: e for e in RevenueEntry.objects.filter(kind=RevenueKind.DEAL_WON, deal__in=won)
    }
    for deal in won:
        result.processed += 1
        at = deal.closed_at or deal.updated_at
        entry = entries.get(deal.pk)
        if entry is None:
            attribution = revenue_attribution(organization=deal.organization, deal=deal, at=at)
            _, created = RevenueEntry.objects.get_or_create(
                deal=deal,
                kind=RevenueKind.DEAL_WON,
                defaults={
                    "organization": deal.organization,
                    "contact": deal.contact,
                    "amount": deal.amount,
                    "currency": deal.currency,
                    "recognized_at": at,
                    "source": attribution.source[:32],
                    "campaign": attribution.campaign[:100],
                    "decision_ids": list(attribution.decision_ids),
                },
            )
            result.created += int(created)
        elif (entry.amount, entry.currency, entry.recognized_at) != (
            deal.amount,
            deal.currency,
            at,
        ):
            RevenueEntry.objects.filter(pk=entry.pk).update(
                amount=deal.amount, currency=deal.currency, recognized_at=at
            )
            result.updated += 1
    not_won = [d.pk for d in batch if d not in won]
    if not_won:
        result.removed = RevenueEntry.objects.filter(
            kind=RevenueKind.DEAL_WON, deal_id__in=not_won
        ).delete()[0]
    return result


def revenue_for_decisions(*, organization, decision_ids) -> dict:
    """Revenue attributed to each of `decision_ids` (the decision outcome report):
    `{decision_id: {"booked": {currency: Decimal}, "collected": {currency: Decimal}}}`.
    One aggregate query (the GIN index on `decision_ids` finds the entries)."""
    wanted = sorted({str(d) for d in decision_ids})
    result: dict = {d: {"booked": {}, "collected": {}} for d in wanted}
    if not wanted:
        return result
    with connection.cursor() as cursor:
        cursor.execute(_REVENUE_BY_DECISION_SQL, [organization.pk, wanted, wanted])
        for decision_id, kind, currency, total in cursor.fetchall():
            bucket = "booked" if kind == RevenueKind.DEAL_WON else "collected"
            result[str(decision_id)][bucket][currency] = total
    return result


_REVENUE_BY_DECISION_SQL = f"""
SELECT d.decision_id, e.kind, e.currency, SUM(e.amount)
FROM {RevenueEntry._meta.db_table} e, unnest(e.decision_ids) AS d(decision_id)
WHERE e.organization_id = %s AND e.decision_ids && %s::uuid[] AND d.decision_id = ANY(%s::uuid[])
GROUP BY 1, 2, 3
"""  # noqa: S608 - table name is our own model's


# --- sequences ----------------------------------------------------------------------------------


@transaction.atomic
def sequence_enroll(
    *, organization, sequence: Sequence, contact, lead=None, enrolled_by: str = "", now=None
) -> tuple[Enrollment, bool]:
    """Enrol a contact in a sequence (first step after its delay). Idempotent: an active
    enrolment is returned as is (created False). Refused: an inactive or empty sequence, a
    merged contact."""
    _require_same_organization(organization, sequence, "sequence_id")
    _require_same_organization(organization, contact, "contact_id")
    _require_same_organization(organization, lead, "lead_id")
    if not sequence.is_active:
        raise Conflict(f"Sequence {sequence.name!r} is paused.", code="sequence_inactive")
    first = sequence.steps.order_by("position").first()
    if first is None:
        raise Conflict(f"Sequence {sequence.name!r} has no steps.", code="sequence_empty")
    if contact.merged_into_id:
        raise invalid("contact_id", "This contact was merged into another.")
    existing = Enrollment.objects.filter(
        sequence=sequence, contact=contact, status=EnrollmentStatus.ACTIVE
    ).first()
    if existing is not None:
        return existing, False
    now = now or timezone.now()
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                organization=organization,
                sequence=sequence,
                contact=contact,
                lead=lead,
                next_step=first.position,
                next_send_at=now + timedelta(hours=first.delay_hours),
                enrolled_by=(enrolled_by or "")[:100],
            )
    except IntegrityError:  # a concurrent enrolment won
        return Enrollment.objects.get(
            sequence=sequence, contact=contact, status=EnrollmentStatus.ACTIVE
        ), False
    return enrollment, True


def enrollment_exit(*, enrollment: Enrollment, reason: str, now=None) -> Enrollment:
    """Stop an enrolment (`exited`, with why). Idempotent for a finished one."""
    if enrollment.status != EnrollmentStatus.ACTIVE:
        return enrollment
    enrollment.status = EnrollmentStatus.EXITED
    enrollment.exited_at = now or timezone.now()
    enrollment.exit_reason = reason[:40]
    enrollment.next_send_at = None
    enrollment.save(
        update_fields=["status", "exited_at", "exit_reason", "next_send_at", "updated_at"]
    )
    return enrollment
