"""Demo revenue data for `manage.py seed_demo`: a price rule per appointment type with a
price, three invoices (paid, partly paid, overdue), booked revenue from the won demo deals,
and an outreach sequence. Idempotent: re-running adds nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.revenue import services
from apps.revenue.models import Invoice, PriceRule, Sequence, SequenceStep

INVOICES = [
    ("Membership, first month", "149.00", "paid"),
    ("Personal training pack (5 sessions)", "375.00", "partly paid"),
    ("Class pack (10 classes)", "180.00", "overdue"),
]


def seed_demo(*, organization) -> None:
    from apps.bookings.models import AppointmentType
    from apps.crm.models import Contact

    services.subscription_ensure(organization=organization)
    services.revenue_settings_for(organization=organization)
    with transaction.atomic():
        for kind in AppointmentType.objects.filter(organization=organization, price__gt=0):
            PriceRule.objects.get_or_create(
                organization=organization,
                appointment_type=kind,
                defaults={
                    "name": kind.name,
                    "min_price": kind.price,
                    "max_price": (kind.price * Decimal("1.25")).quantize(Decimal("0.01")),
                    "currency": kind.currency,
                },
            )
    if not Invoice.objects.filter(organization=organization).exists():
        contacts = list(
            Contact.objects.filter(organization=organization, merged_into__isnull=True).order_by(
                "created_at"
            )[: len(INVOICES)]
        )
        today = timezone.now().astimezone(organization.tz).date()
        for contact, (description, price, state) in zip(contacts, INVOICES, strict=False):
            issued = today - timedelta(days=40 if state == "overdue" else 5)
            invoice = services.invoice_create(
                organization=organization,
                contact=contact,
                lines=[{"description": description, "unit_price": price}],
                currency=organization.currency,
                issue_date=issued,
                due_date=issued + timedelta(days=14),
                actor="demo",
            )
            invoice = services.invoice_send(organization=organization, invoice=invoice)
            if state == "paid":
                services.payment_record(
                    organization=organization, invoice=invoice, amount=price, method="card"
                )
            elif state == "partly paid":
                services.payment_record(
                    organization=organization, invoice=invoice, amount="125.00", method="cash"
                )
        services.invoices_mark_overdue()
    services.revenue_sync_won_deals()
    with transaction.atomic():
        sequence, created = Sequence.objects.get_or_create(
            organization=organization,
            name="New lead welcome",
            defaults={"is_active": False, "exit_lead_statuses": ["converted", "disqualified"]},
        )
        if created:
            SequenceStep.objects.bulk_create(
                [
                    SequenceStep(
                        organization=organization,
                        sequence=sequence,
                        position=1,
                        channel="auto",
                        body="Hi {first_name}, thanks for reaching out to {business_name}! "
                        "Reply with a good time and we'll set you up.",
                        template_purpose="follow_up",
                    ),
                    SequenceStep(
                        organization=organization,
                        sequence=sequence,
                        position=2,
                        delay_hours=48,
                        channel="email",
                        subject="Still thinking it over?",
                        body="Hi {first_name}, any questions we can answer? Just reply.",
                        template_purpose="follow_up",
                    ),
                ]
            )
