"""CRM reads. Every selector takes the organization first and preloads what callers render."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from apps.core.errors import NotFound
from apps.crm.models import (
    Contact,
    ContactConsent,
    ContactIdentity,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Task,
)
from apps.crm.normalize import InvalidIdentity, normalize_phone
from apps.crm.timeline import TimelineEntry, contact_timeline_entries

_PHONE_LIKE = re.compile(r"^[\d\s+().\-/]+$")
MIN_PHONE_DIGITS = 3


def _not_found(what: str, field_name: str | None = None) -> NotFound:
    message = f"{what} not found."
    if field_name:
        return NotFound(f"{field_name}: {message}", details={field_name: [message]})
    return NotFound(message)


# --- contacts -------------------------------------------------------------------------------


def contact_search_q(term: str, *, region: str) -> Q:
    """Name or email containing `term` (case-insensitive); for phone-like terms, the phone too.

    Served by the trigram indexes on UPPER(name), UPPER(email) and phone. Phones are
    stored in E.164, so a typed "(415) 555-01" searches the digits "41555501", and a
    complete national number ("07700 900123") also matches its E.164 form.
    """
    term = term.strip()
    condition = Q(name__icontains=term) | Q(email__icontains=term)
    if _PHONE_LIKE.match(term):
        digits = re.sub(r"\D", "", term)
        if len(digits.lstrip("0")) >= MIN_PHONE_DIGITS:
            condition |= Q(phone__contains=digits.lstrip("0"))
        with contextlib.suppress(InvalidIdentity):
            condition |= Q(phone=normalize_phone(term, region=region))
    return condition


def contact_list(
    *,
    organization,
    search: str | None = None,
    tag: str | None = None,
    lifecycle_stage: str | None = None,
    source: str | None = None,
    owner_id=None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    include_merged: bool = False,
) -> QuerySet[Contact]:
    """Live contacts (merged ones hidden), newest first, filtered; owner and consents loaded."""
    queryset = Contact.objects.filter(organization=organization)
    if not include_merged:
        queryset = queryset.filter(merged_into__isnull=True)
    if search and search.strip():
        queryset = queryset.filter(
            contact_search_q(search, region=organization.default_phone_region)
        )
    if tag:
        queryset = queryset.filter(tags__contains=[tag])
    if lifecycle_stage:
        queryset = queryset.filter(lifecycle_stage=lifecycle_stage)
    if source:
        queryset = queryset.filter(source=source)
    if owner_id:
        queryset = queryset.filter(owner_id=owner_id)
    if created_after:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before:
        queryset = queryset.filter(created_at__lt=created_before)
    return (
        queryset.select_related("owner", "company")
        .prefetch_related(
            Prefetch("consents", queryset=ContactConsent.objects.order_by("channel")),
            Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "value")),
        )
        .order_by("-created_at", "-id")
    )


def contact_get(*, organization, contact_id, field_name: str | None = None) -> Contact:
    """One contact of the organization (merged ones too: they say where they went)."""
    contact = (
        Contact.objects.filter(organization=organization, pk=contact_id)
        .select_related("owner", "company", "organization", "merged_into")
        .prefetch_related(
            Prefetch("consents", queryset=ContactConsent.objects.order_by("channel")),
            Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "value")),
        )
        .first()
    )
    if contact is None:
        raise _not_found("Contact", field_name)
    return contact


def contact_live_get(*, organization, contact_id, field_name: str | None = None) -> Contact:
    """Like `contact_get`, but a merged contact resolves to its survivor."""
    contact = contact_get(organization=organization, contact_id=contact_id, field_name=field_name)
    if contact.merged_into_id:
        return contact_get(organization=organization, contact_id=contact.merged_into_id)
    return contact


def contact_timeline(*, organization, contact: Contact, limit: int = 100) -> list[TimelineEntry]:
    """Notes, tasks, leads, deals (and stage moves), bookings, and whatever other apps
    register, newest first."""
    if contact.organization_id != organization.pk:
        raise _not_found("Contact")
    contact.organization = organization
    return contact_timeline_entries(contact, limit=limit)


def member_get(*, organization, user_id, field_name: str = "owner_id"):
    """A staff user who belongs to the organization (for owner / assignee ids)."""
    from apps.tenancy.models import User

    user = User.objects.filter(memberships__organization=organization, pk=user_id).first()
    if user is None:
        raise _not_found("User", field_name)
    return user


# --- pipelines ------------------------------------------------------------------------------


def pipeline_list(*, organization) -> QuerySet[Pipeline]:
    return (
        Pipeline.objects.filter(organization=organization)
        .select_related("niche")
        .prefetch_related(Prefetch("stages", queryset=Stage.objects.order_by("order")))
        .order_by("-is_default", "name")
    )


def pipeline_get(*, organization, pipeline_id, field_name: str | None = None) -> Pipeline:
    pipeline = pipeline_list(organization=organization).filter(pk=pipeline_id).first()
    if pipeline is None:
        raise _not_found("Pipeline", field_name)
    return pipeline


def stage_resolve(*, pipeline: Pipeline, stage_id=None, name: str | None = None) -> Stage:
    """A stage of `pipeline` by id, or by name (case-insensitive)."""
    stages = Stage.objects.filter(pipeline=pipeline)
    if stage_id is not None:
        stage = stages.filter(pk=stage_id).first()
        if stage is None:
            raise _not_found("Stage", "stage_id")
        return stage
    stage = stages.filter(name__iexact=(name or "").strip()).first()
    if stage is None:
        names = ", ".join(stages.order_by("order").values_list("name", flat=True))
        raise NotFound(
            f"stage: no stage {name!r} in {pipeline.name!r} (stages: {names}).",
            details={"stage": ["not a stage of this pipeline"]},
        )
    return stage


@dataclass
class BoardColumn:
    stage: Stage
    count: int = 0
    amount: Decimal = Decimal("0")  # in the board's currency
    other_currencies: dict[str, Decimal] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)

    @property
    def weighted(self) -> Decimal:
        return (self.amount * self.stage.probability / 100).quantize(Decimal("0.01"))

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.deals))


@dataclass
class Board:
    pipeline: Pipeline
    currency: str
    columns: list[BoardColumn]
    closed_since: datetime

    @property
    def open_count(self) -> int:
        return sum(c.count for c in self.columns if not (c.stage.is_won or c.stage.is_lost))

    @property
    def open_amount(self) -> Decimal:
        return sum(
            (c.amount for c in self.columns if not (c.stage.is_won or c.stage.is_lost)),
            Decimal("0"),
        )

    @property
    def max_amount(self) -> Decimal:
        return max((c.amount for c in self.columns), default=Decimal("0"))


def pipeline_board(
    *, organization, pipeline: Pipeline, cards_per_stage: int = 25, closed_days: int = 30
) -> Board:
    """Per stage: deal count and value (summed in the database), and its newest cards.

    Open stages count every deal in them; won and lost stages count the deals closed in the
    last `closed_days` days. Amounts are totalled per currency; the board's currency is the
    organization's. Three queries, whatever the number of deals.
    """
    if pipeline.organization_id != organization.pk:
        raise _not_found("Pipeline")
    since = timezone.now() - timedelta(days=closed_days)
    stages = list(Stage.objects.filter(pipeline=pipeline).order_by("order"))
    columns = {s.pk: BoardColumn(stage=s) for s in stages}
    on_board = Q(organization=organization, pipeline=pipeline) & (
        Q(stage__is_won=False, stage__is_lost=False) | Q(closed_at__gte=since)
    )
    totals = (
        Deal.objects.filter(on_board)
        .values("stage_id", "currency")
        .annotate(n=Count("id"), total=Sum("amount"))
        .order_by()
    )
    currency = organization.currency
    for row in totals:
        column = columns.get(row["stage_id"])
        if column is None:
            continue
        column.count += row["n"]
        total = row["total"] or Decimal("0")
        if row["currency"] == currency:
            column.amount += total
        else:
            column.other_currencies[row["currency"]] = total
    cards = (
        Deal.objects.filter(on_board)
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("stage_id")],
                order_by=[F("stage_changed_at").desc(nulls_last=True), F("id").desc()],
            )
        )
        .filter(position__lte=cards_per_stage)
        .select_related("contact", "owner")
        .order_by("stage_id", "position")
    )
    for deal in cards:
        column = columns.get(deal.stage_id)
        if column is not None:
            column.deals.append(deal)
    return Board(
        pipeline=pipeline, currency=currency, columns=list(columns.values()), closed_since=since
    )


# --- deals, leads, tasks --------------------------------------------------------------------


def deal_list(
    *,
    organization,
    status: str | None = None,
    pipeline_id=None,
    stage_id=None,
    contact_id=None,
    owner_id=None,
) -> QuerySet[Deal]:
    queryset = Deal.objects.filter(organization=organization)
    for key, value in (
        ("status", status),
        ("pipeline_id", pipeline_id),
        ("stage_id", stage_id),
        ("contact_id", contact_id),
        ("owner_id", owner_id),
    ):
        if value:
            queryset = queryset.filter(**{key: value})
    return queryset.select_related("pipeline", "stage", "contact", "owner").order_by(
        "-created_at", "-id"
    )


def deal_get(*, organization, deal_id, field_name: str | None = None) -> Deal:
    deal = (
        Deal.objects.filter(organization=organization, pk=deal_id)
        .select_related("pipeline", "stage", "contact", "owner", "company")
        .prefetch_related(
            Prefetch(
                "stage_changes",
                queryset=DealStageChange.objects.select_related(
                    "from_stage", "to_stage", "changed_by"
                ).order_by("created_at"),
            )
        )
        .first()
    )
    if deal is None:
        raise _not_found("Deal", field_name)
    return deal


def lead_list(
    *,
    organization,
    status: str | None = None,
    source: str | None = None,
    contact_id=None,
    min_score: int | None = None,
) -> QuerySet[Lead]:
    queryset = Lead.objects.filter(organization=organization)
    if status:
        queryset = queryset.filter(status=status)
    if source:
        queryset = queryset.filter(source=source)
    if contact_id:
        queryset = queryset.filter(contact_id=contact_id)
    if min_score is not None:
        queryset = queryset.filter(score__gte=min_score)
    return queryset.select_related("contact", "owner").order_by("-created_at", "-id")


def lead_get(*, organization, lead_id, field_name: str | None = None) -> Lead:
    lead = (
        Lead.objects.filter(organization=organization, pk=lead_id)
        .select_related("contact", "owner", "organization__primary_niche")
        .first()
    )
    if lead is None:
        raise _not_found("Lead", field_name)
    return lead


def task_list(
    *,
    organization,
    status: str | None = None,
    assignee_id=None,
    contact_id=None,
    deal_id=None,
    due_before: datetime | None = None,
) -> QuerySet[Task]:
    queryset = Task.objects.filter(organization=organization)
    for key, value in (
        ("status", status),
        ("assignee_id", assignee_id),
        ("contact_id", contact_id),
        ("deal_id", deal_id),
    ):
        if value:
            queryset = queryset.filter(**{key: value})
    if due_before:
        queryset = queryset.filter(due_at__lt=due_before)
    return queryset.select_related("assignee", "contact", "deal").order_by(
        F("due_at").asc(nulls_last=True), "-created_at", "-id"
    )


def task_get(*, organization, task_id, field_name: str | None = None) -> Task:
    task = (
        Task.objects.filter(organization=organization, pk=task_id)
        .select_related("assignee", "contact", "deal", "completed_by")
        .first()
    )
    if task is None:
        raise _not_found("Task", field_name)
    return task


def note_list(*, organization, contact: Contact) -> QuerySet[Note]:
    return (
        Note.objects.filter(organization=organization, contact=contact)
        .select_related("author", "deal")
        .order_by("-created_at")
    )


def user_organization_options(*, user) -> list:
    """The organizations whose CRM a staff user may open (all of them for superusers)."""
    from apps.tenancy.models import Organization
    from apps.tenancy.selectors import user_organization_ids

    organizations = Organization.objects.select_related("primary_niche").order_by("name")
    if user.is_superuser:
        return list(organizations)
    return list(organizations.filter(pk__in=user_organization_ids(user=user)))
