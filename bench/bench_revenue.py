"""Revenue on a large organization: the cost of the tier enforcer's usage counting and of
each dashboard's aggregates.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/bench_revenue.py \
        [--contacts 100000] [--messages 300000] [--repeat 7]

Creates (once) the organization `bench-revenue` (fitness, New York) with `--contacts`
contacts, one lead each (a mix of statuses), a deal for a third of them across the
pipeline's stages, bookings for a tenth, `--messages` messages over the last 60 days (ids
are UUIDv7 of their creation time, as in production), revenue entries over 12 months and
100,000 webhook delivery attempts over 30 days; plus a noise organization with a tenth of
that. Rows are bulk-inserted (the services are exercised by the tests, not here).

Prints one JSON object: medians (ms) of the usage checks (`limit_check` per limit, the
bounded COUNT at several limit sizes against a full COUNT, the per-day counter's Redis
check and its PostgreSQL seed with and without the UUIDv7 id range), of each dashboard
selector, and of each dashboard page rendered through the Django test client (queries
per page included). Targets: a limit check <= 5 ms at the free/starter limits; every
dashboard page <= 500 ms on this organization. The machine is shared and noisy: compare
runs made back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.bookings.models import AppointmentType, Booking, Resource  # noqa: E402
from apps.conversations.models import Conversation, Message  # noqa: E402
from apps.core.errors import LimitExceeded  # noqa: E402
from apps.crm.models import Contact, Deal, Lead, Stage  # noqa: E402
from apps.crm.services import pipeline_ensure_default  # noqa: E402
from apps.events.models import Delivery, DeliveryAttempt  # noqa: E402
from apps.events.services import emit, webhook_endpoint_create  # noqa: E402
from apps.niches.seed import niches_load  # noqa: E402
from apps.revenue import limits, selectors  # noqa: E402
from apps.revenue.models import RevenueEntry  # noqa: E402
from apps.revenue.plans import plans_ensure_defaults  # noqa: E402
from apps.tenancy.models import Organization, User  # noqa: E402
from apps.tenancy.services import (  # noqa: E402
    operator_upsert,
    organization_create,
    organization_provision_defaults,
)

SLUG = "bench-revenue"
BATCH = 5000
SOURCES = ["instagram", "facebook", "google", "referral", "website", "sms", "whatsapp"]
CHANNELS = ["sms", "sms", "sms", "whatsapp", "whatsapp", "email", "manychat"]


def uuid7_at(moment, rng: random.Random) -> uuid.UUID:
    ms = int(moment.timestamp() * 1000)
    rand = rng.getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def bulk(model, rows) -> None:
    for start in range(0, len(rows), BATCH):
        model.objects.bulk_create(rows[start : start + BATCH])


def arrange(slug: str, contacts: int, messages: int, attempts: int, seed: int) -> Organization:
    """The organization with its volume (created once; re-runs reuse it)."""
    niches_load()
    plans_ensure_defaults()
    organization = Organization.objects.filter(slug=slug).first()
    if organization is not None:
        return organization
    organization = organization_create(
        name=f"Bench {slug}", niche="fitness", slug=slug, timezone_name="America/New_York"
    )
    organization_provision_defaults(organization=organization)
    operator_upsert(
        organization=organization, email=f"admin@{slug}.test", role="admin", password="x"
    )
    rng = random.Random(seed)
    now = timezone.now()
    org_id = organization.pk

    contact_rows = [
        Contact(
            id=uuid.uuid4(),
            organization_id=org_id,
            name=f"Person {n}",
            email=f"p{n}@{slug}.test",
            phone=f"+1415{n:07d}",
            source=rng.choice(SOURCES),
            lifecycle_stage=rng.choice(["lead", "lead", "opportunity", "customer"]),
            last_activity_at=now - timedelta(days=rng.randint(0, 200)),
        )
        for n in range(contacts)
    ]
    bulk(Contact, contact_rows)
    lead_rows = []
    for contact in contact_rows:
        created = now - timedelta(days=rng.randint(0, 120), minutes=rng.randint(0, 1440))
        status = rng.choice(["new", "contacted", "qualified", "disqualified", "converted"])
        lead_rows.append(
            Lead(
                id=uuid.uuid4(),
                organization_id=org_id,
                contact_id=contact.id,
                status=status,
                source=contact.source,
                campaign=rng.choice(["", "spring", "summer", "referral-2025"]),
                qualified_at=created + timedelta(days=1)
                if status in ("qualified", "converted")
                else None,
                last_activity_at=created,
            )
        )
    bulk(Lead, lead_rows)
    with connection.cursor() as cursor:  # leads opened over the last 60 days
        cursor.execute(
            "UPDATE crm_lead SET created_at = now() - random() * interval '60 days' "
            "WHERE organization_id = %s",
            [org_id],
        )

    pipeline = pipeline_ensure_default(organization=organization)
    stages = list(Stage.objects.filter(pipeline=pipeline).order_by("order"))
    deal_rows = []
    for index, lead in enumerate(lead_rows[: contacts // 3]):
        stage = stages[index % len(stages)]
        closed = now - timedelta(days=rng.randint(0, 80)) if stage.is_won or stage.is_lost else None
        deal_rows.append(
            Deal(
                id=uuid.uuid4(),
                organization_id=org_id,
                title=f"Deal {index}",
                contact_id=lead.contact_id,
                lead_id=lead.id,
                pipeline=pipeline,
                stage=stage,
                status="won" if stage.is_won else "lost" if stage.is_lost else "open",
                amount=Decimal(rng.randint(49, 2000)),
                currency="USD",
                source=lead.source,
                closed_at=closed,
                stage_changed_at=now - timedelta(days=rng.randint(0, 30)),
                last_activity_at=now - timedelta(days=rng.randint(0, 30)),
            )
        )
    bulk(Deal, deal_rows)

    kind = AppointmentType.objects.filter(organization=organization).first()
    resource = Resource.objects.filter(organization=organization).first()
    booking_rows = []
    for index, contact in enumerate(contact_rows[: contacts // 10]):
        start = now - timedelta(days=rng.randint(0, 90), hours=index % 24)
        booking_rows.append(
            Booking(
                organization_id=org_id,
                contact_id=contact.id,
                appointment_type=kind,
                resource=resource,
                start=start,
                end=start + timedelta(minutes=45),
                blocked_start=start,
                blocked_end=start + timedelta(minutes=45),
                status=rng.choice(["completed", "cancelled", "no_show"]),
            )
        )
    bulk(Booking, booking_rows)

    conversations = [
        Conversation(id=uuid.uuid4(), organization_id=org_id, contact_id=c.id)
        for c in contact_rows[: max(contacts // 2, 1)]
    ]
    bulk(Conversation, conversations)
    message_rows = []
    for _ in range(messages):
        conversation = rng.choice(conversations)
        at = now - timedelta(seconds=rng.randint(0, 60 * 86400))
        inbound = rng.random() < 0.5
        message_rows.append(
            Message(
                id=uuid7_at(at, rng),
                organization_id=org_id,
                conversation_id=conversation.id,
                contact_id=conversation.contact_id,
                direction="in" if inbound else "out",
                channel=rng.choice(CHANNELS),
                sender_kind="contact" if inbound else "agent",
                text="hello",
                status="received" if inbound else "delivered",
            )
        )
        if len(message_rows) >= BATCH:
            bulk(Message, message_rows)
            message_rows = []
    bulk(Message, message_rows)
    with connection.cursor() as cursor:  # created_at follows the id's timestamp
        cursor.execute(
            "UPDATE conversations_message SET created_at = to_timestamp("
            "('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0) "
            "WHERE organization_id = %s",
            [org_id],
        )

    entries = [
        RevenueEntry(
            organization_id=org_id,
            kind=rng.choice(["deal_won", "invoice_paid"]),
            amount=Decimal(rng.randint(49, 2000)),
            currency=rng.choice(["USD"] * 9 + ["EUR"]),
            recognized_at=now - timedelta(days=rng.randint(0, 365)),
            source=rng.choice(SOURCES),
            campaign=rng.choice(["", "spring", "summer"]),
        )
        for _ in range(max(contacts // 5, 1))
    ]
    bulk(RevenueEntry, entries)

    endpoint = webhook_endpoint_create(
        organization=organization, url="https://hooks.example.com/n8n", event_types=["*"]
    )
    with transaction.atomic():
        event = emit(
            organization=organization,
            type="task.created",
            subject_type="task",
            subject_id="bench",
            data={"task_id": str(uuid.uuid4()), "title": "bench", "status": "open"},
        )
    delivery = Delivery.objects.create(organization=organization, event=event, endpoint=endpoint)
    attempt_rows = [
        DeliveryAttempt(
            organization_id=org_id,
            delivery=delivery,
            endpoint=endpoint,
            attempt_number=1,
            created_at=now - timedelta(seconds=rng.randint(0, 30 * 86400)),
            succeeded=rng.random() < 0.97,
            duration_ms=rng.randint(20, 900),
        )
        for _ in range(attempts)
    ]
    bulk(DeliveryAttempt, attempt_rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return organization


def median_ms(fn, repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--slug", default=SLUG, help="Reuse (or create) this organization.")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["*"]

    started = time.perf_counter()
    arrange(f"{args.slug}-noise", args.contacts // 10, args.messages // 10, args.attempts // 10, 2)
    organization = arrange(args.slug, args.contacts, args.messages, args.attempts, 1)
    arranged_s = round(time.perf_counter() - started, 1)
    now = timezone.now()
    result: dict = {
        "organization": {
            "contacts": Contact.objects.filter(organization=organization).count(),
            "leads": Lead.objects.filter(organization=organization).count(),
            "deals": Deal.objects.filter(organization=organization).count(),
            "messages": Message.objects.filter(organization=organization).count(),
            "revenue_entries": RevenueEntry.objects.filter(organization=organization).count(),
            "delivery_attempts": DeliveryAttempt.objects.filter(organization=organization).count(),
        },
        "arrange_seconds": arranged_s,
    }

    # --- usage counting ------------------------------------------------------------------
    contacts = limits._total_queryset(organization, "contacts")
    usage = {
        f"contacts_count_limit_{n}": median_ms(lambda n=n: contacts[:n].count(), args.repeat)
        for n in (1_000, 10_000, 100_000)
    }
    usage["contacts_full_count"] = median_ms(contacts.count, args.repeat)
    limits.plan_cache_clear()
    limits.plan_for(organization)

    def check(limit):
        def run():
            with contextlib.suppress(LimitExceeded):  # a refusal costs the same check
                limits.limit_check(organization=organization, limit=limit)

        return run

    for limit in limits.LIMITS:
        usage[f"limit_check_{limit}_free_plan"] = median_ms(check(limit), args.repeat * 3)
    _, start, end = limits.period_bounds(organization, "day")
    usage["messages_today_seed_id_range"] = median_ms(
        lambda: limits._period_db_count(organization, "outbound_messages_per_day", start, end),
        args.repeat,
    )
    usage["messages_today_count_by_created_at"] = median_ms(
        lambda: Message.objects.filter(
            organization=organization, direction="out", created_at__gte=start, created_at__lt=end
        ).count(),
        args.repeat,
    )
    result["usage_ms"] = usage

    # --- dashboards ----------------------------------------------------------------------------
    since = now - timedelta(days=30)
    selector_calls = {
        "pipeline_by_stage": lambda: selectors.pipeline_by_stage(organization=organization),
        "revenue_by_month_12": lambda: selectors.revenue_by_month(organization=organization),
        "revenue_by_source_30d": lambda: selectors.revenue_by_source(
            organization=organization, since=since
        ),
        "conversion_funnel_30d": lambda: selectors.conversion_funnel(
            organization=organization, since=since
        ),
        "message_volume_30d": lambda: selectors.message_volume(
            organization=organization, since=since
        ),
        "webhook_delivery_success_30d": lambda: selectors.webhook_delivery_success(
            organization=organization, since=since
        ),
        "decision_outcomes_30d": lambda: selectors.decision_outcomes(
            organization=organization, since=since
        ),
    }
    result["selectors_ms"] = {
        name: median_ms(call, args.repeat) for name, call in selector_calls.items()
    }
    client = Client()
    client.force_login(User.objects.get(email=f"admin@{args.slug}.test"))
    pages = {}
    for name, url in (
        ("revenue", "/admin/revenue/"),
        ("activity", "/admin/revenue/activity/"),
        ("usage", "/admin/revenue/usage/"),
    ):
        executed: list[str] = []

        def count(execute, sql, params, many, context, executed=executed):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            assert client.get(url).status_code == 200
        pages[name] = {
            "ms": median_ms(lambda url=url: client.get(url), args.repeat),
            "queries": len(executed),
        }
    result["pages"] = pages
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
