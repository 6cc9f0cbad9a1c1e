"""Reads of revenue: invoices, and the aggregates behind the dashboards and reports.

Every report is one (or two) aggregate queries whose cost does not grow with the number of
rows returned to Python: the database groups and sums, Python only lays the result out.
Amounts are totalled per currency (never across currencies).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from apps.core.errors import NotFound
from apps.revenue.limits import uuid7_floor
from apps.revenue.models import Invoice, RevenueEntry, RevenueKind

ZERO = Decimal("0.00")


def invoice_list(
    *, organization, status: str | None = None, contact_id=None, deal_id=None
) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(organization=organization).select_related("contact")
    if status:
        invoices = invoices.filter(status=status)
    if contact_id:
        invoices = invoices.filter(contact_id=contact_id)
    if deal_id:
        invoices = invoices.filter(deal_id=deal_id)
    return invoices.order_by("-sequence_number")


def invoice_get(*, organization, invoice_id, field_name: str | None = None) -> Invoice:
    """One invoice of the organization with its lines and payments (foreign id: NotFound)."""
    invoice = (
        Invoice.objects.filter(organization=organization, pk=invoice_id)
        .select_related("contact", "company", "deal", "organization")
        .prefetch_related("lines", "payments")
        .first()
    )
    if invoice is None:
        message = "Invoice not found."
        if field_name:
            raise NotFound(f"{field_name}: {message}", details={field_name: [message]})
        raise NotFound(message)
    return invoice


# --- revenue reports --------------------------------------------------------------------------


@dataclass
class MonthRevenue:
    month: date
    booked: dict = field(default_factory=dict)  # currency -> Decimal
    collected: dict = field(default_factory=dict)


def _month_starts(organization, months: int, now: datetime) -> list[date]:
    local = now.astimezone(organization.tz).date().replace(day=1)
    starts = [local]
    for _ in range(months - 1):
        starts.append((starts[-1] - timedelta(days=1)).replace(day=1))
    return list(reversed(starts))


def revenue_by_month(*, organization, months: int = 12, now: datetime | None = None):
    """Booked (won deals) and collected (paid invoices) revenue per calendar month of the
    organization's time zone, per currency, for the last `months` months. One query."""
    now = now or timezone.now()
    starts = _month_starts(organization, months, now)
    since = datetime.combine(starts[0], datetime.min.time(), tzinfo=organization.tz)
    rows = (
        RevenueEntry.objects.filter(organization=organization, recognized_at__gte=since)
        .annotate(month=TruncMonth("recognized_at", tzinfo=organization.tz))
        .values("month", "kind", "currency")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    by_month = {start: MonthRevenue(start) for start in starts}
    for row in rows:
        month = row["month"].date() if isinstance(row["month"], datetime) else row["month"]
        bucket = by_month.get(month)
        if bucket is None:
            continue
        target = bucket.booked if row["kind"] == RevenueKind.DEAL_WON else bucket.collected
        target[row["currency"]] = target.get(row["currency"], ZERO) + row["total"]
    return list(by_month.values())


@dataclass
class SourceRevenue:
    source: str
    deals: int = 0
    booked: dict = field(default_factory=dict)
    collected: dict = field(default_factory=dict)


def revenue_by_source(*, organization, since: datetime) -> list[SourceRevenue]:
    """Booked and collected revenue per source channel since `since`, biggest first (in
    the organization's currency). One query."""
    rows = (
        RevenueEntry.objects.filter(organization=organization, recognized_at__gte=since)
        .values("source", "kind", "currency")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by()
    )
    sources: dict[str, SourceRevenue] = {}
    for row in rows:
        item = sources.setdefault(row["source"] or "unknown", SourceRevenue(row["source"]))
        if row["kind"] == RevenueKind.DEAL_WON:
            item.deals += row["n"]
            item.booked[row["currency"]] = row["total"]
        else:
            item.collected[row["currency"]] = row["total"]
    currency = organization.currency
    return sorted(
        sources.values(),
        key=lambda s: s.booked.get(currency, ZERO) + s.collected.get(currency, ZERO),
        reverse=True,
    )


def revenue_by_campaign(*, organization, since: datetime) -> list[dict]:
    """Revenue per campaign since `since`: `[{campaign, kind, currency, total, n}]`."""
    return list(
        RevenueEntry.objects.filter(organization=organization, recognized_at__gte=since)
        .exclude(campaign="")
        .values("campaign", "kind", "currency")
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by("-total")
    )


# --- dashboards -------------------------------------------------------------------------------


@dataclass
class StageValue:
    name: str
    probability: int
    is_won: bool
    is_lost: bool
    count: int = 0
    amount: Decimal = ZERO  # in the organization's currency
    other: dict = field(default_factory=dict)


def pipeline_by_stage(*, organization, pipeline=None, closed_days: int = 90) -> list[StageValue]:
    """Deals and their value per stage of the (default) pipeline: open stages count every
    deal in them, won and lost stages the deals closed in the last `closed_days` days. Two
    queries (stages, one aggregate)."""
    from apps.crm.models import Deal, Pipeline, Stage

    if pipeline is None:
        pipeline = Pipeline.objects.filter(organization=organization, is_default=True).first()
        if pipeline is None:
            return []
    stages = {
        s.pk: StageValue(s.name, s.probability, s.is_won, s.is_lost)
        for s in Stage.objects.filter(pipeline=pipeline).order_by("order")
    }
    since = timezone.now() - timedelta(days=closed_days)
    totals = (
        Deal.objects.filter(organization=organization, pipeline=pipeline)
        .filter(Q(stage__is_won=False, stage__is_lost=False) | Q(closed_at__gte=since))
        .values("stage_id", "currency")
        .annotate(n=Count("id"), total=Sum("amount"))
        .order_by()
    )
    for row in totals:
        stage = stages.get(row["stage_id"])
        if stage is None:
            continue
        stage.count += row["n"]
        total = row["total"] or ZERO
        if row["currency"] == organization.currency:
            stage.amount += total
        else:
            stage.other[row["currency"]] = stage.other.get(row["currency"], ZERO) + total
    return list(stages.values())


@dataclass(frozen=True)
class Funnel:
    leads: int
    qualified: int
    booked: int
    won: int

    def steps(self) -> list[tuple[str, int]]:
        return [
            ("Leads", self.leads),
            ("Qualified", self.qualified),
            ("Booked", self.booked),
            ("Won", self.won),
        ]


def conversion_funnel(*, organization, since: datetime) -> Funnel:
    """Of the leads created since `since`: how many were qualified, booked an appointment
    (after the lead opened) and won a deal. Three aggregate queries written so PostgreSQL
    runs them as hash (semi-)joins: a correlated sub-select per lead costs ~2x more on an
    organization with 50,000 recent leads (and trips the JIT)."""
    from apps.bookings.models import Booking
    from apps.crm.models import Deal, DealStatus, Lead, LeadStatus

    leads = Lead.objects.filter(organization=organization, created_at__gte=since)
    totals = leads.aggregate(
        leads=Count("id"),
        qualified=Count(
            "id",
            filter=Q(qualified_at__isnull=False)
            | Q(status__in=[LeadStatus.QUALIFIED, LeadStatus.CONVERTED]),
        ),
    )
    booked = leads.filter(
        Exists(
            Booking.objects.filter(
                contact_id=OuterRef("contact_id"), created_at__gte=OuterRef("created_at")
            )
        )
    ).count()
    won_deals = Deal.objects.filter(organization=organization, status=DealStatus.WON)
    won = leads.filter(
        Q(pk__in=won_deals.exclude(lead=None).values("lead_id"))
        | Q(deal_id__in=won_deals.values("pk"))
    ).count()
    return Funnel(booked=booked, won=won, **totals)


@dataclass
class DayVolume:
    day: date
    by_channel: dict = field(default_factory=dict)  # channel -> {"in": n, "out": n}

    @property
    def total(self) -> int:
        return sum(sum(v.values()) for v in self.by_channel.values())


def _days(organization, since: datetime, now: datetime) -> list[date]:
    first = since.astimezone(organization.tz).date()
    last = now.astimezone(organization.tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def message_volume(*, organization, since: datetime, now: datetime | None = None):
    """Messages per day (organization's time zone), channel and direction since `since`:
    (days, totals per channel). One aggregate query over an id range (UUIDv7 ids are
    time-ordered, so only the period's rows are read)."""
    from apps.conversations.models import Message

    now = now or timezone.now()
    rows = (
        Message.objects.filter(
            organization=organization, id__gte=uuid7_floor(since), is_internal_note=False
        )
        .annotate(day=TruncDate("created_at", tzinfo=organization.tz))
        .values("day", "channel", "direction")
        .annotate(n=Count("id"))
        .order_by()
    )
    days = {d: DayVolume(d) for d in _days(organization, since, now)}
    totals: dict = defaultdict(lambda: {"in": 0, "out": 0})
    for row in rows:
        totals[row["channel"]][row["direction"]] += row["n"]
        volume = days.get(row["day"])
        if volume is not None:
            volume.by_channel.setdefault(row["channel"], {"in": 0, "out": 0})
            volume.by_channel[row["channel"]][row["direction"]] += row["n"]
    return list(days.values()), dict(totals)


@dataclass
class DayDeliveries:
    day: date
    attempts: int = 0
    succeeded: int = 0

    @property
    def rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def webhook_delivery_success(*, organization, since: datetime, now: datetime | None = None):
    """Webhook delivery attempts and successes per day since `since`, plus the deliveries
    that died (dead letters). Two aggregate queries on indexed columns."""
    from apps.events.models import Delivery, DeliveryAttempt, DeliveryStatus, WebhookEndpoint

    now = now or timezone.now()
    endpoints = WebhookEndpoint.objects.filter(organization=organization).values("pk")
    rows = (
        DeliveryAttempt.objects.filter(endpoint__in=endpoints, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=organization.tz))
        .values("day")
        .annotate(attempts=Count("id"), succeeded=Count("id", filter=Q(succeeded=True)))
        .order_by()
    )
    days = {d: DayDeliveries(d) for d in _days(organization, since, now)}
    for row in rows:
        bucket = days.get(row["day"])
        if bucket is not None:
            bucket.attempts, bucket.succeeded = row["attempts"], row["succeeded"]
    dead = Delivery.objects.filter(
        organization=organization, status=DeliveryStatus.DEAD, created_at__gte=since
    ).count()
    return list(days.values()), dead


@dataclass
class DecisionOutcomes:
    decisions: int
    outcomes: dict  # kind -> decisions with that outcome
    by_engine: dict
    revenue: dict  # "booked"/"collected" -> {currency: Decimal}


def decision_outcomes(*, organization, since: datetime) -> DecisionOutcomes:
    """Decisions made since `since`, how many of them led to a reply, a booking, a won deal
    (linked by the decisions app's outcome job), by engine, and the revenue attributed to
    decisions. Four aggregate queries."""
    from apps.decisions.models import Decision, DecisionOutcome

    decisions = Decision.objects.filter(organization=organization, created_at__gte=since)
    total = decisions.count()
    outcomes = dict(
        DecisionOutcome.objects.filter(organization=organization, decision__created_at__gte=since)
        .values_list("kind")
        .annotate(n=Count("decision_id", distinct=True))
        .order_by()
    )
    by_engine = dict(decisions.values_list("engine").annotate(n=Count("id")).order_by())
    revenue: dict = {"booked": {}, "collected": {}}
    for row in (
        RevenueEntry.objects.filter(organization=organization, recognized_at__gte=since)
        .exclude(decision_ids=[])
        .values("kind", "currency")
        .annotate(total=Sum("amount"))
        .order_by()
    ):
        bucket = "booked" if row["kind"] == RevenueKind.DEAL_WON else "collected"
        revenue[bucket][row["currency"]] = row["total"]
    return DecisionOutcomes(total, outcomes, by_engine, revenue)
