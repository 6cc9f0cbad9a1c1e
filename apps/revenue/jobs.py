"""The revenue-intelligence jobs (run by celery beat; schedules editable in the admin under
Periodic tasks). Each run is logged as a `JobRun` (started/finished, rows processed, things
created, errors), takes a PostgreSQL advisory lock so two runs of a job never overlap, and is
idempotent: running it again finds nothing new to do.

- `churn_guard_run`: open deals idle past their stage's `max_idle_days`, and customers
  showing churn signals → one task for the owner and one event per episode.
- `lead_resurrection_run`: dead or silent leads → enrolled in the organization's
  re-engagement sequence (sent by `sequences_advance_run`).
- `outreach_enroll_run`: leads matching a sequence's enrolment rules → enrolled.
- `sequences_advance_run`: due sequence steps → `message_send`, respecting opt-outs,
  consent, quiet hours, the WhatsApp window, the daily caps and the plan's message limit;
  stops on a reply, a booking, an exit status or an opt-out.
- `lead_enrichment_run`: company from the email domain, time zone from the phone number,
  duplicate suggestions.
- `invoices_overdue_run`, `revenue_sync_run`: overdue invoices, booked revenue from won deals.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    Max,
    OuterRef,
    Q,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from phonenumbers import timezone as phone_timezone

from apps.core.errors import DomainError, Unprocessable
from apps.revenue import services
from apps.revenue.compliance import consent_missing, next_allowed_send
from apps.revenue.limits import limit_remaining, uuid7_floor
from apps.revenue.models import (
    ChurnAlert,
    ChurnSignal,
    ContactEnrichment,
    DuplicateSuggestion,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepSend,
    Invoice,
    InvoiceStatus,
    JobRun,
    JobRunStatus,
    RevenueSettings,
    Sequence,
    SequenceKind,
    SequenceStep,
    StepSendStatus,
)

logger = logging.getLogger(__name__)

BATCH = 500
MAX_ERROR_MESSAGES = 20


# --- run log --------------------------------------------------------------------------------------


@dataclass
class RunCounters:
    processed: int = 0
    created: int = 0
    errors: int = 0
    error_messages: list = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.details[key] = self.details.get(key, 0) + n

    @contextmanager
    def item(self, label: str) -> Iterator[None]:
        """One unit of work in its own transaction; a failure is counted and logged, and the
        run goes on with the next item."""
        try:
            with transaction.atomic():
                yield
        except Exception as exc:
            self.errors += 1
            if len(self.error_messages) < MAX_ERROR_MESSAGES:
                self.error_messages.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
            logger.warning("revenue job item %s failed", label, exc_info=True)


def _lock_key(job: str) -> int:
    digest = hashlib.blake2b(f"revenue-job:{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def job_run(job: str) -> Iterator[RunCounters | None]:
    """Log one run of `job` as a JobRun and hold the job's advisory lock meanwhile. Yields
    None (and logs nothing) when another run of the job holds the lock."""
    key = _lock_key(job)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        if not cursor.fetchone()[0]:
            logger.info("revenue job %s is already running; skipped", job)
            yield None
            return
    counters = RunCounters()
    run = JobRun.objects.create(job=job, started_at=timezone.now())
    try:
        yield counters
    except Exception as exc:
        counters.errors += 1
        counters.error_messages.append(f"run: {type(exc).__name__}: {exc}"[:300])
        run.status = JobRunStatus.FAILED
        raise
    else:
        run.status = JobRunStatus.SUCCEEDED
    finally:
        run.finished_at = timezone.now()
        run.processed, run.created, run.errors = (
            counters.processed,
            counters.created,
            counters.errors,
        )
        run.error_messages, run.details = counters.error_messages, counters.details
        run.save()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _organizations(**settings_filter):
    """Active organizations with their revenue settings (created with defaults)."""
    from apps.tenancy.models import Organization

    organizations = list(
        Organization.objects.filter(is_active=True).select_related("primary_niche")
    )
    existing = RevenueSettings.objects.in_bulk([o.pk for o in organizations])
    missing = [RevenueSettings(organization=o) for o in organizations if o.pk not in existing]
    if missing:
        RevenueSettings.objects.bulk_create(missing, ignore_conflicts=True)
        existing = RevenueSettings.objects.in_bulk([o.pk for o in organizations])
    for organization in organizations:
        row = existing[organization.pk]
        if all(getattr(row, k) == v for k, v in settings_filter.items()):
            yield organization, row


def _member_or_none(organization, user_id):
    from apps.tenancy.models import Membership

    if user_id and Membership.objects.filter(organization=organization, user_id=user_id).exists():
        return user_id
    return None


# --- churn guard --------------------------------------------------------------------------------


class MakeInterval(Func):
    template = "make_interval(days => %(expressions)s)"
    output_field = DurationField()


CANCEL_INTENT = re.compile(
    r"\b(?:cancel|end|stop|terminate|pause|freeze)\s+(?:my|our|the)\s+"
    r"(?:membership|subscription|plan|account|contract|service|package)"
    r"|\b(?:want|like|going|need)\s+to\s+cancel\b|\bcancel(?:ling|ing)?\s+(?:my|our)\b",
    re.IGNORECASE,
)
NEGATED = re.compile(r"\b(?:don'?t|do not|not|never|no need to)\s*$", re.IGNORECASE)
CANCEL_INTENT_SQL = (
    r"(cancel|end|stop|terminate|pause|freeze)\s+(my|our|the)\s+"
    r"(membership|subscription|plan|account|contract|service|package)"
    r"|(want|like|going|need)\s+to\s+cancel|cancel(l?ing)?\s+(my|our)"
)


def _churn_task(organization, *, title, description, assignee_id, contact=None, deal=None):
    from apps.crm.services import task_create
    from apps.tenancy.models import User

    assignee_id = _member_or_none(organization, assignee_id)
    return task_create(
        organization=organization,
        title=title[:200],
        description=description,
        due_at=timezone.now() + timedelta(days=1),
        assignee=User.objects.get(pk=assignee_id) if assignee_id else None,
        contact=contact,
        deal=deal,
        source="churn_guard",
    )


def _alert_once(organization, signal, subject_id, anchor, **fields) -> ChurnAlert | None:
    """The alert for this episode, or None when it was already raised (idempotency)."""
    alert, created = ChurnAlert.objects.get_or_create(
        organization=organization,
        signal=signal,
        subject_id=subject_id,
        anchor=anchor[:64],
        defaults=fields,
    )
    return alert if created else None


def _stale_deals(organization, now: datetime):
    from apps.crm.models import Deal, DealStatus

    anchor = Greatest(
        Coalesce("last_activity_at", "stage_changed_at", "created_at"),
        Coalesce("stage_changed_at", "created_at"),
        Coalesce("contact__last_activity_at", "created_at"),
    )
    limit_at = ExpressionWrapper(
        Value(now, output_field=DateTimeField()) - MakeInterval(F("stage__max_idle_days")),
        output_field=DateTimeField(),
    )
    handled = ChurnAlert.objects.filter(
        signal=ChurnSignal.STALE_DEAL, deal=OuterRef("pk"), created_at__gte=OuterRef("idle_since")
    )
    return (
        Deal.objects.filter(
            organization=organization,
            status=DealStatus.OPEN,
            stage__max_idle_days__isnull=False,
        )
        .annotate(idle_since=anchor, limit_at=limit_at)
        .filter(idle_since__lt=F("limit_at"))
        .exclude(Exists(handled))
        .select_related("stage", "contact")
        .order_by("idle_since")[:BATCH]
    )


def _customer_signals(organization, config: RevenueSettings, now: datetime):
    """(signal, contact, anchor, reason, extra) for each churn signal among customers."""
    from apps.bookings.models import Booking, BookingStatus
    from apps.conversations.models import Direction, Message
    from apps.crm.models import Contact, LifecycleStage

    customers = Contact.objects.filter(
        organization=organization,
        lifecycle_stage=LifecycleStage.CUSTOMER,
        merged_into__isnull=True,
    )
    silent_since = now - timedelta(days=config.customer_silent_days)
    handled = ChurnAlert.objects.filter(
        signal=ChurnSignal.CUSTOMER_SILENT,
        contact=OuterRef("pk"),
        created_at__gte=OuterRef("last_activity_at"),
    )
    for contact in customers.filter(last_activity_at__lt=silent_since).exclude(Exists(handled))[
        :BATCH
    ]:
        days = (now - contact.last_activity_at).days
        yield (
            ChurnSignal.CUSTOMER_SILENT,
            contact,
            f"{int(contact.last_activity_at.timestamp())}",
            f"no activity for {days} days",
            {},
        )

    since = now - timedelta(days=config.churn_lookback_days)
    missed = (
        Booking.objects.filter(
            organization=organization,
            contact__in=customers,
        )
        .filter(
            Q(status=BookingStatus.CANCELLED, cancelled_at__gte=since)
            | Q(status=BookingStatus.NO_SHOW, no_show_at__gte=since)
        )
        .values("contact_id")
        .annotate(n=Count("id"), last=Max("updated_at"))
        .filter(n__gte=config.missed_bookings_threshold)
        .order_by("contact_id")[:BATCH]
    )
    rows = list(missed)
    contacts = Contact.objects.in_bulk([r["contact_id"] for r in rows])
    for row in rows:
        yield (
            ChurnSignal.MISSED_BOOKINGS,
            contacts[row["contact_id"]],
            f"{int(row['last'].timestamp())}",
            f"{row['n']} cancelled or missed bookings in {config.churn_lookback_days} days",
            {},
        )

    for invoice in (
        Invoice.objects.filter(organization=organization, status=InvoiceStatus.OVERDUE)
        .exclude(contact=None)
        .select_related("contact")
        .order_by("due_date")[:BATCH]
    ):
        yield (
            ChurnSignal.OVERDUE_INVOICE,
            invoice.contact,
            str(invoice.pk),
            f"invoice {invoice.number} is overdue ({invoice.balance_due} {invoice.currency})",
            {"invoice_id": str(invoice.pk)},
        )

    messages = (
        Message.objects.filter(
            organization=organization,
            direction=Direction.INBOUND,
            id__gte=uuid7_floor(since),
            contact__in=customers,
            text__iregex=CANCEL_INTENT_SQL,
        )
        .select_related("contact")
        .order_by("id")[:BATCH]
    )
    for message in messages:
        match = CANCEL_INTENT.search(message.text)
        if match is None or NEGATED.search(message.text[: match.start()]):
            continue
        yield (
            ChurnSignal.CANCEL_INTENT,
            message.contact,
            str(message.pk),
            f'wrote "{match.group(0)}"',
            {},
        )


def churn_guard_run(*, now: datetime | None = None) -> RunCounters | None:
    """Stale deals and customer churn signals → a task for the owner and `deal.stale` /
    `contact.churn_risk`, once per episode (the same idle period, silence, overdue invoice
    or message never raises a second alert). Stops for a deal that moved, closed or saw
    activity; for a customer who came back."""
    from apps.events.services import emit

    now = now or timezone.now()
    with job_run("churn_guard") as run:
        if run is None:
            return None
        for organization, config in _organizations(churn_guard_enabled=True):
            for deal in _stale_deals(organization, now):
                run.processed += 1
                with run.item(f"deal {deal.pk}"):
                    idle_days = (now - deal.idle_since).days
                    alert = _alert_once(
                        organization,
                        ChurnSignal.STALE_DEAL,
                        deal.pk,
                        f"{deal.stage_id}:{int(deal.idle_since.timestamp())}",
                        deal=deal,
                        contact=deal.contact,
                        details={"idle_days": idle_days, "stage": deal.stage.name},
                    )
                    if alert is None:
                        continue
                    owner_id = deal.owner_id or (deal.contact.owner_id if deal.contact else None)
                    task = _churn_task(
                        organization,
                        title=f"Stale deal: {deal.title} — {idle_days} days in {deal.stage.name}",
                        description=(
                            f"No activity for {idle_days} days; deals in {deal.stage.name} "
                            f"should move within {deal.stage.max_idle_days} days. Follow up, "
                            "move it on, or close it."
                        ),
                        assignee_id=owner_id,
                        deal=deal,
                    )
                    alert.task = task
                    alert.save(update_fields=["task", "updated_at"])
                    emit(
                        organization=organization,
                        type="deal.stale",
                        subject_type="deal",
                        subject_id=deal.pk,
                        data={
                            "deal_id": str(deal.pk),
                            "contact_id": str(deal.contact_id) if deal.contact_id else None,
                            "title": deal.title,
                            "stage": deal.stage.name,
                            "stage_id": str(deal.stage_id),
                            "idle_days": idle_days,
                            "max_idle_days": deal.stage.max_idle_days,
                            "owner_id": str(task.assignee_id) if task.assignee_id else None,
                            "task_id": str(task.pk),
                            "amount": str(deal.amount) if deal.amount is not None else None,
                            "currency": deal.currency,
                        },
                    )
                    run.created += 1
                    run.count("stale_deal")
            for signal, contact, anchor, reason, extra in _customer_signals(
                organization, config, now
            ):
                run.processed += 1
                with run.item(f"{signal} {contact.pk}"):
                    alert = _alert_once(
                        organization,
                        signal,
                        contact.pk,
                        anchor,
                        contact=contact,
                        details={"reason": reason, **extra},
                    )
                    if alert is None:
                        continue
                    task = _churn_task(
                        organization,
                        title=f"Churn risk: {contact} — {reason}",
                        description=f"{ChurnSignal(signal).label}: {reason}. Reach out.",
                        assignee_id=contact.owner_id,
                        contact=contact,
                    )
                    alert.task = task
                    alert.save(update_fields=["task", "updated_at"])
                    emit(
                        organization=organization,
                        type="contact.churn_risk",
                        subject_type="contact",
                        subject_id=contact.pk,
                        data={
                            "contact_id": str(contact.pk),
                            "signal": signal,
                            "reason": reason,
                            "owner_id": str(task.assignee_id) if task.assignee_id else None,
                            "task_id": str(task.pk),
                            **extra,
                        },
                    )
                    run.created += 1
                    run.count(signal)
        return run


# --- sequences: enrolment -----------------------------------------------------------------------

DEFAULT_RESURRECTION_STEPS = [
    {"position": 1, "delay_hours": 0, "channel": "auto", "template_purpose": "reactivation"},
    {"position": 2, "delay_hours": 96, "channel": "auto", "template_purpose": "follow_up"},
]


def resurrection_sequence_ensure(*, organization, config: RevenueSettings) -> Sequence:
    """The organization's re-engagement sequence, created (two steps, niche prompts) when
    missing. Idempotent."""
    if config.resurrection_sequence_id:
        return config.resurrection_sequence
    with transaction.atomic():
        sequence, created = Sequence.objects.get_or_create(
            organization=organization,
            name="Re-engagement",
            defaults={
                "kind": SequenceKind.RESURRECTION,
                "exit_lead_statuses": ["converted", "disqualified"],
            },
        )
        if created:
            SequenceStep.objects.bulk_create(
                [
                    SequenceStep(organization=organization, sequence=sequence, **step)
                    for step in DEFAULT_RESURRECTION_STEPS
                ]
            )
        RevenueSettings.objects.filter(pk=config.pk).update(resurrection_sequence=sequence)
        config.resurrection_sequence = sequence
    return sequence


def _not_enrolled_since(sequence: Sequence, since: datetime | None):
    enrollments = Enrollment.objects.filter(sequence=sequence, contact=OuterRef("contact_id"))
    if since is not None:
        enrollments = enrollments.filter(
            Q(status=EnrollmentStatus.ACTIVE) | Q(created_at__gte=since)
        )
    return ~Exists(enrollments)


def lead_resurrection_run(*, now: datetime | None = None) -> RunCounters | None:
    """Dead or silent leads (status in the organization's list, no activity on the lead or
    the contact for `resurrection_silent_days`) → enrolled in the re-engagement sequence,
    one lead per contact, at most once per `resurrection_cooldown_days`. Organizations opt
    in (`resurrection_enabled`). Idempotent."""
    from apps.crm.models import Lead, LeadStatus

    now = now or timezone.now()
    with job_run("lead_resurrection") as run:
        if run is None:
            return None
        for organization, config in _organizations(resurrection_enabled=True):
            sequence = resurrection_sequence_ensure(organization=organization, config=config)
            if not sequence.is_active:
                continue
            cutoff = now - timedelta(days=config.resurrection_silent_days)
            statuses = config.resurrection_lead_statuses or [
                LeadStatus.NEW,
                LeadStatus.CONTACTED,
            ]
            leads = (
                Lead.objects.filter(
                    organization=organization,
                    status__in=statuses,
                    contact__merged_into__isnull=True,
                    created_at__lt=cutoff,
                )
                .filter(Q(last_activity_at__lt=cutoff) | Q(last_activity_at__isnull=True))
                .filter(
                    Q(contact__last_activity_at__lt=cutoff)
                    | Q(contact__last_activity_at__isnull=True)
                )
                .filter(
                    _not_enrolled_since(
                        sequence, now - timedelta(days=config.resurrection_cooldown_days)
                    )
                )
                .order_by("contact_id", "-created_at")
                .distinct("contact_id")
                .select_related("contact")[:BATCH]
            )
            for lead in leads:
                run.processed += 1
                with run.item(f"lead {lead.pk}"):
                    _, created = services.sequence_enroll(
                        organization=organization,
                        sequence=sequence,
                        contact=lead.contact,
                        lead=lead,
                        enrolled_by="resurrection",
                        now=now,
                    )
                    run.created += int(created)
        return run


def outreach_enroll_run(*, now: datetime | None = None) -> RunCounters | None:
    """Leads matching an active outreach sequence's enrolment rules (lead statuses, sources,
    contact tags, created within N days) → enrolled, once per contact and sequence.
    Idempotent."""
    from apps.crm.models import Lead

    now = now or timezone.now()
    with job_run("outreach_enroll") as run:
        if run is None:
            return None
        sequences = Sequence.objects.filter(
            kind=SequenceKind.OUTREACH, is_active=True, auto_enroll=True
        ).select_related("organization")
        for sequence in sequences:
            leads = Lead.objects.filter(
                organization=sequence.organization_id, contact__merged_into__isnull=True
            )
            if sequence.enroll_lead_statuses:
                leads = leads.filter(status__in=sequence.enroll_lead_statuses)
            if sequence.enroll_lead_sources:
                leads = leads.filter(source__in=sequence.enroll_lead_sources)
            if sequence.enroll_tags:
                leads = leads.filter(contact__tags__overlap=sequence.enroll_tags)
            if sequence.enroll_created_within_days:
                leads = leads.filter(
                    created_at__gte=now - timedelta(days=sequence.enroll_created_within_days)
                )
            leads = (
                leads.filter(_not_enrolled_since(sequence, None))
                .order_by("contact_id", "-created_at")
                .distinct("contact_id")
                .select_related("contact")[:BATCH]
            )
            for lead in leads:
                run.processed += 1
                with run.item(f"lead {lead.pk}"):
                    _, created = services.sequence_enroll(
                        organization=sequence.organization,
                        sequence=sequence,
                        contact=lead.contact,
                        lead=lead,
                        enrolled_by="rule",
                        now=now,
                    )
                    run.created += int(created)
        return run


# --- sequences: sending -------------------------------------------------------------------------

UNSUBSCRIBE_SALT = "revenue.unsubscribe"
DEFAULT_TEXTS = {
    "reactivation": "Hi {first_name}, it's {business_name}. It's been a while: are you still "
    "interested? Reply here and we'll pick up where we left off.",
    "follow_up": "Hi {first_name}, just checking in from {business_name}. Happy to help "
    "whenever you're ready: simply reply to this message.",
}
FALLBACK_TEXT = "Hi {first_name}, it's {business_name}. Reply here any time if we can help."


def unsubscribe_token(*, organization_id, contact_id, channel: str) -> str:
    return signing.dumps([str(organization_id), str(contact_id), channel], salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(*, organization_id, contact_id, channel: str) -> str:
    token = unsubscribe_token(
        organization_id=organization_id, contact_id=contact_id, channel=channel
    )
    return f"{settings.PUBLIC_URL}/api/v1/unsubscribe/{token}/"


def _step_channel(step: SequenceStep, contact, conversation) -> str:
    if step.channel != "auto":
        return step.channel
    if conversation is not None and conversation.last_inbound_channel in (
        "sms",
        "whatsapp",
        "email",
    ):
        return conversation.last_inbound_channel
    return "sms" if contact.phone else "email"


def _step_text(organization, step: SequenceStep, contact, channel: str) -> str:
    from apps.niches.selectors import niche_context, prompt_render

    context = niche_context(organization=organization)
    template = step.body
    if not template.strip():
        prompt = context.prompt_for_purpose(step.template_purpose, channel)
        template = (
            prompt.template if prompt else DEFAULT_TEXTS.get(step.template_purpose, FALLBACK_TEXT)
        )
    first_name = (contact.name or "").split()[0] if (contact.name or "").split() else ""
    variables = {
        "first_name": first_name,
        "business_name": organization.name,
        "agent_name": context.agent_pack.agent_name if context.agent_pack else "",
    }
    text = prompt_render(template, variables)
    if channel == "email":
        url = unsubscribe_url(
            organization_id=organization.pk, contact_id=contact.pk, channel="email"
        )
        text += f"\n\n--\nTo stop these emails, reply STOP or unsubscribe: {url}"
    return text


def _exit_reason(enrollment: Enrollment, conversation) -> str:
    """Why an active enrolment must stop now, or ""."""
    from apps.bookings.models import Booking

    contact = enrollment.contact
    if contact.merged_into_id:
        return "merged"
    if (
        conversation is not None
        and conversation.last_inbound_at is not None
        and conversation.last_inbound_at > enrollment.created_at
    ):
        return "replied"
    sequence = enrollment.sequence
    if enrollment.lead is not None and enrollment.lead.status in sequence.exit_lead_statuses:
        return f"lead_{enrollment.lead.status}"
    if (
        sequence.exit_on_booking
        and Booking.objects.filter(contact=contact, created_at__gt=enrollment.created_at).exists()
    ):
        return "booked"
    return ""


@dataclass
class _Budget:
    """What an organization may still send today (sequences cap, plan limit)."""

    org_left: int | None
    sequence_left: dict = field(default_factory=dict)


def _day_start(organization, now: datetime) -> tuple[datetime, datetime]:
    local = now.astimezone(organization.tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _budget(organization, config: RevenueSettings, now: datetime) -> _Budget:
    start, _ = _day_start(organization, now)
    sent_today = EnrollmentStepSend.objects.filter(
        organization=organization, status=StepSendStatus.SENT, created_at__gte=start
    ).count()
    caps = [config.outreach_daily_cap - sent_today]
    plan_left = limit_remaining(organization=organization, limit="outbound_messages_per_day")
    if plan_left is not None:
        caps.append(plan_left)
    return _Budget(org_left=max(min(caps), 0))


def _sequence_left(budget: _Budget, sequence: Sequence, organization, now: datetime):
    if sequence.daily_cap is None:
        return None
    if sequence.pk not in budget.sequence_left:
        start, _ = _day_start(organization, now)
        sent = EnrollmentStepSend.objects.filter(
            enrollment__sequence=sequence, status=StepSendStatus.SENT, created_at__gte=start
        ).count()
        budget.sequence_left[sequence.pk] = max(sequence.daily_cap - sent, 0)
    return budget.sequence_left[sequence.pk]


def _advance(enrollment: Enrollment, now: datetime) -> None:
    """Move to the step after the current one (or complete the enrolment)."""
    following = (
        enrollment.sequence.steps.filter(position__gt=enrollment.next_step)
        .order_by("position")
        .first()
    )
    if following is None:
        enrollment.status, enrollment.next_send_at = EnrollmentStatus.COMPLETED, None
    else:
        enrollment.next_step = following.position
        enrollment.next_send_at = now + timedelta(hours=following.delay_hours)
    enrollment.save(
        update_fields=["status", "next_step", "next_send_at", "last_sent_at", "updated_at"]
    )


def _skip(enrollment: Enrollment, step: SequenceStep, channel: str, reason: str, now) -> None:
    EnrollmentStepSend.objects.get_or_create(
        enrollment=enrollment,
        position=step.position,
        defaults={
            "organization_id": enrollment.organization_id,
            "channel": channel,
            "status": StepSendStatus.SKIPPED,
            "reason": reason[:200],
        },
    )
    _advance(enrollment, now)


def _advance_one(enrollment: Enrollment, run: RunCounters, budget: _Budget, now: datetime):
    from apps.conversations.models import SenderKind
    from apps.conversations.selectors import conversation_get_for_contact
    from apps.conversations.services import message_send
    from apps.providers.selectors import contact_opted_out

    organization, sequence, contact = (
        enrollment.organization,
        enrollment.sequence,
        enrollment.contact,
    )
    conversation = conversation_get_for_contact(organization=organization, contact_id=contact.pk)
    reason = _exit_reason(enrollment, conversation)
    if reason:
        services.enrollment_exit(enrollment=enrollment, reason=reason, now=now)
        run.count(f"exited_{reason}")
        return
    step = sequence.steps.filter(position=enrollment.next_step).first()
    if step is None:
        enrollment.status, enrollment.next_send_at = EnrollmentStatus.COMPLETED, None
        enrollment.save(update_fields=["status", "next_send_at", "updated_at"])
        return
    if EnrollmentStepSend.objects.filter(enrollment=enrollment, position=step.position).exists():
        _advance(enrollment, now)  # done by an earlier run that stopped before advancing
        return
    channel = _step_channel(step, contact, conversation)
    if contact_opted_out(contact=contact, channel=channel):
        services.enrollment_exit(enrollment=enrollment, reason="opted_out", now=now)
        run.count("exited_opted_out")
        return
    rule = consent_missing(
        organization=organization,
        contact=contact,
        channel=channel,
        conversation=conversation,
        at=now,
    )
    if rule:
        _skip(enrollment, step, channel, f"no consent on {channel} ({rule})", now)
        run.count("skipped_no_consent")
        return
    window = next_allowed_send(organization=organization, contact=contact, channel=channel, at=now)
    if window.allowed_at > now:
        enrollment.next_send_at = window.allowed_at
        enrollment.save(update_fields=["next_send_at", "updated_at"])
        run.count("held_quiet_hours")
        return
    sequence_left = _sequence_left(budget, sequence, organization, now)
    if budget.org_left == 0 or sequence_left == 0:
        _, tomorrow = _day_start(organization, now)
        enrollment.next_send_at = tomorrow.astimezone(now.tzinfo) + timedelta(minutes=5)
        enrollment.save(update_fields=["next_send_at", "updated_at"])
        run.count("held_daily_cap")
        return
    try:
        with transaction.atomic():
            message = message_send(
                organization=organization,
                contact=contact,
                text=_step_text(organization, step, contact, channel),
                channel=channel,
                purpose=step.template_purpose or None,
                subject=step.subject,
                sender_kind=SenderKind.SYSTEM,
                now=now,
            )
            EnrollmentStepSend.objects.create(
                organization=organization,
                enrollment=enrollment,
                position=step.position,
                channel=channel,
                status=StepSendStatus.SENT,
                message=message,
            )
    except Unprocessable as exc:
        if exc.code == "opted_out":
            services.enrollment_exit(enrollment=enrollment, reason="opted_out", now=now)
            run.count("exited_opted_out")
        else:
            _skip(enrollment, step, channel, f"{exc.code}: {exc.message}", now)
            run.count(f"skipped_{exc.code}")
        return
    budget.org_left -= 1
    if sequence_left is not None:
        budget.sequence_left[sequence.pk] -= 1
    enrollment.last_sent_at = now
    _advance(enrollment, now)
    run.created += 1


def sequences_advance_run(*, now: datetime | None = None) -> RunCounters | None:
    """Send every due sequence step (see `_advance_one` for the order of checks: exit rules,
    opt-out, consent, quiet hours, daily caps, then `message_send`). Each enrolment is
    locked while it is worked on and each step is recorded once (`EnrollmentStepSend`), so a
    second run, or a concurrent one, sends nothing twice."""
    now = now or timezone.now()
    with job_run("sequences_advance") as run:
        if run is None:
            return None
        due = list(
            Enrollment.objects.filter(
                status=EnrollmentStatus.ACTIVE,
                next_send_at__lte=now,
                sequence__is_active=True,
            )
            .order_by("next_send_at")
            .values_list("pk", "organization_id")[:BATCH]
        )
        budgets: dict = {}
        settings_rows = RevenueSettings.objects.in_bulk({org for _, org in due})
        for pk, organization_id in due:
            run.processed += 1
            with run.item(f"enrollment {pk}"):
                enrollment = (
                    Enrollment.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("organization", "sequence", "contact", "lead")
                    .filter(pk=pk, status=EnrollmentStatus.ACTIVE, next_send_at__lte=now)
                    .first()
                )
                if enrollment is None:
                    continue
                organization = enrollment.organization
                if organization_id not in budgets:
                    config = settings_rows.get(organization_id) or services.revenue_settings_for(
                        organization=organization
                    )
                    budgets[organization_id] = _budget(organization, config, now)
                _advance_one(enrollment, run, budgets[organization_id], now)
        return run


def unsubscribe(*, token: str):
    """Opt a contact out of the channel named in an unsubscribe token (signed, so it cannot
    be forged); every sequence stops at its next step. Idempotent. Returns the contact."""
    from apps.crm.models import Contact
    from apps.crm.services import contact_set_consent

    try:
        organization_id, contact_id, channel = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise DomainError("This unsubscribe link is not valid.", code="invalid_token") from None
    contact = (
        Contact.objects.select_related("organization")
        .filter(pk=contact_id, organization_id=organization_id)
        .first()
    )
    if contact is None:
        raise DomainError("This unsubscribe link is not valid.", code="invalid_token")
    contact_set_consent(
        organization=contact.organization,
        contact=contact,
        channel=channel,
        opted_in=False,
        reason="unsubscribe link",
        source="unsubscribe",
    )
    return contact


# --- lead enrichment ----------------------------------------------------------------------------

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "ymail.com",
        "rocketmail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "126.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "btinternet.com",
        "sky.com",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "example.com",
        "example.org",
        "example.net",
    }
)
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu"})


def email_domain(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    return email.rsplit("@", 1)[1].strip().lower().removeprefix("www.")


def company_name_from_domain(domain: str) -> str:
    """`acme-dental.co.uk` → `Acme Dental`."""
    labels = domain.split(".")
    core = labels[-3] if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL else labels[-2]
    return " ".join(part.capitalize() for part in re.split(r"[-_]+", core) if part) or domain


def timezone_from_phone(phone: str | None) -> str:
    """The IANA time zone of a phone number when it has exactly one, else ""."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ""
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else ""


def canonical_email(email: str) -> str:
    """Lower case, without a +tag; Gmail addresses also without dots."""
    local, _, domain = email.lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _normal_name(name: str) -> str:
    return " ".join((name or "").lower().split())


def duplicate_candidates(contact) -> list[tuple[object, int, str]]:
    """(other contact, score, reason) for contacts of the same organization that may be the
    same person. Indexed lookups only (name equality and e-mail trigram search)."""
    from apps.crm.models import Contact

    others = Contact.objects.filter(
        organization_id=contact.organization_id, merged_into__isnull=True
    ).exclude(pk=contact.pk)
    found: dict = {}
    if contact.email:
        local = contact.email.split("@", 1)[0].split("+", 1)[0]
        domain = email_domain(contact.email)
        if len(local) >= 3:
            for other in others.filter(email__icontains=local, email__iendswith=f"@{domain}")[:20]:
                if other.email != contact.email and canonical_email(other.email) == canonical_email(
                    contact.email
                ):
                    found[other.pk] = (other, 90, "same e-mail address (ignoring +tags and dots)")
    name = _normal_name(contact.name)
    if len(name.split()) >= 2:
        domain = email_domain(contact.email)
        for other in others.filter(name__iexact=contact.name.strip())[:20]:
            if other.pk in found:
                continue
            if contact.phone and other.phone and contact.phone[-7:] == other.phone[-7:]:
                found[other.pk] = (other, 80, "same name and phone number")
            elif (contact.company_id and contact.company_id == other.company_id) or (
                domain and domain not in FREE_MAIL_DOMAINS and email_domain(other.email) == domain
            ):
                found[other.pk] = (other, 70, "same name and company")
            else:
                found[other.pk] = (other, 40, "same name")
    return list(found.values())


def _enrich_contact(contact, run: RunCounters, now: datetime) -> None:
    from apps.crm.models import Company
    from apps.crm.services import company_create, contact_update

    organization = contact.organization
    domain = email_domain(contact.email)
    changes: dict = {}
    company_set = False
    if domain and domain not in FREE_MAIL_DOMAINS and contact.company_id is None:
        company = Company.objects.filter(organization=organization, domain=domain).first()
        if company is None:
            company = company_create(
                organization=organization,
                name=company_name_from_domain(domain),
                domain=domain,
                website=f"https://{domain}",
            )
            run.count("companies_created")
        changes["company"] = company
        company_set = True
    zone = ""
    if not contact.timezone:
        zone = timezone_from_phone(contact.phone)
        if zone:
            changes["timezone"] = zone
    if changes:
        contact = contact_update(organization=organization, contact=contact, data=changes)
        run.created += 1
    duplicates = duplicate_candidates(contact)
    new_pairs = DuplicateSuggestion.objects.bulk_create(
        [
            DuplicateSuggestion(
                organization=organization,
                contact_id=min(contact.pk, other.pk),
                other_id=max(contact.pk, other.pk),
                score=score,
                reason=reason,
            )
            for other, score, reason in duplicates
        ],
        ignore_conflicts=True,
    )
    if new_pairs:
        run.count("duplicates_suggested", len(duplicates))
    ContactEnrichment.objects.update_or_create(
        contact=contact,
        defaults={
            "organization": organization,
            "enriched_at": timezone.now(),
            "domain": domain,
            "company_set": company_set,
            "timezone_set": zone,
            "duplicates_found": len(duplicates),
        },
    )


def lead_enrichment_run(*, now: datetime | None = None) -> RunCounters | None:
    """Contacts never enriched, or changed since: company from the e-mail domain (free-mail
    domains skipped; an existing company with that domain is reused), time zone from the
    phone number (only when it has exactly one), duplicate suggestions. Blanks are filled,
    nothing set by a person is overwritten. Idempotent: an unchanged contact is skipped."""
    from apps.crm.models import Contact

    now = now or timezone.now()
    with job_run("lead_enrichment") as run:
        if run is None:
            return None
        enabled = [org.pk for org, _ in _organizations(enrichment_enabled=True)]
        stale = ContactEnrichment.objects.filter(
            contact=OuterRef("pk"), enriched_at__gte=OuterRef("updated_at")
        )
        contacts = (
            Contact.objects.filter(organization_id__in=enabled, merged_into__isnull=True)
            .exclude(Exists(stale))
            .select_related("organization")
            .order_by("updated_at")[:BATCH]
        )
        for contact in contacts:
            run.processed += 1
            with run.item(f"contact {contact.pk}"):
                _enrich_contact(contact, run, now)
        return run


# --- invoices and revenue -------------------------------------------------------------------------


def invoices_overdue_run(*, now: datetime | None = None) -> RunCounters | None:
    """Sent invoices past due → overdue with `invoice.overdue` (once each)."""
    with job_run("invoices_overdue") as run:
        if run is None:
            return None
        moved = services.invoices_mark_overdue(
            today=now.date() if now is not None else None, limit=BATCH
        )
        run.processed = run.created = len(moved)
        return run


SYNC_OVERLAP = timedelta(minutes=5)
SYNC_BATCH = 2000


def revenue_sync_run(*, now: datetime | None = None) -> RunCounters | None:
    """Booked revenue follows the won deals changed since the last successful run (or,
    after a run that stopped at its batch size, from where that run stopped)."""
    with job_run("revenue_sync") as run:
        if run is None:
            return None
        last = (
            JobRun.objects.filter(job="revenue_sync", status=JobRunStatus.SUCCEEDED)
            .order_by("-started_at")
            .values_list("started_at", "details")
            .first()
        )
        since = after = None
        if last is not None:
            started_at, details = last
            resume = (details or {}).get("resume_after")
            if resume:
                after = (datetime.fromisoformat(resume[0]), uuid.UUID(resume[1]))
            else:
                since = started_at - SYNC_OVERLAP
        result = services.revenue_sync_won_deals(since=since, after=after, limit=SYNC_BATCH)
        run.processed, run.created = result.processed, result.created
        run.details = {"updated": result.updated, "removed": result.removed}
        if result.resume_after is not None:
            moment, pk = result.resume_after
            run.details["resume_after"] = [moment.isoformat(), str(pk)]
        return run


JOBS = {
    "churn_guard": churn_guard_run,
    "lead_resurrection": lead_resurrection_run,
    "outreach_enroll": outreach_enroll_run,
    "sequences_advance": sequences_advance_run,
    "lead_enrichment": lead_enrichment_run,
    "invoices_overdue": invoices_overdue_run,
    "revenue_sync": revenue_sync_run,
}
