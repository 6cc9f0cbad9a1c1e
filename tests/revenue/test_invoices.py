"""Invoices: totals in Decimal, gap-free numbering (under concurrency too), the status
machine, payments and the overdue job."""

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from apps.core.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from apps.events.models import Event
from apps.revenue import jobs, services
from apps.revenue.models import (
    Invoice,
    InvoiceSequence,
    InvoiceStatus,
    Payment,
    RevenueEntry,
    RevenueKind,
)
from tests.factories import OrganizationFactory
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db


def events(organization, type_):
    return list(Event.objects.filter(organization=organization, type=type_).order_by("sequence"))


def test_totals_are_decimal_rounded_half_up_per_line(organization, contact):
    invoice = f.invoice(
        organization,
        contact=contact,
        lines=[
            {
                "description": "Class pack",
                "quantity": "3",
                "unit_price": "19.99",
                "tax_rate": "8.25",
            },
            {"description": "Towel", "quantity": "0.5", "unit_price": "0.05"},  # 0.025 -> 0.03
            {"description": "Intro", "unit_price": 10, "tax_rate": "7.5"},
        ],
    )
    lines = list(invoice.lines.order_by("position"))
    assert [line.amount for line in lines] == [Decimal("59.97"), Decimal("0.03"), Decimal("10.00")]
    assert [line.tax_amount for line in lines] == [
        Decimal("4.95"),
        Decimal("0.00"),
        Decimal("0.75"),
    ]
    assert invoice.subtotal == Decimal("70.00")
    assert invoice.tax_total == Decimal("5.70")
    assert invoice.total == Decimal("75.70")
    assert isinstance(invoice.total, Decimal)
    assert invoice.currency == "USD" and invoice.status == InvoiceStatus.DRAFT
    assert invoice.bill_to_name == "Maya Chen" and invoice.bill_to_email == "maya@acme-dental.com"
    assert invoice.due_date - invoice.issue_date == timedelta(days=14)
    [created] = events(organization, "invoice.created")
    assert created.data["total"] == "75.70" and created.data["number"] == invoice.number


def test_numbers_are_consecutive_per_organization_with_a_configurable_prefix(
    organization, other_organization
):
    first = f.invoice(organization)
    InvoiceSequence.objects.filter(organization=organization).update(prefix="PF-2025-", padding=3)
    second = f.invoice(organization)
    other = f.invoice(other_organization)
    assert first.number == "INV-00001" and first.sequence_number == 1
    assert second.number == "PF-2025-002" and second.sequence_number == 2
    assert other.number == "INV-00001"


def test_a_refused_invoice_leaves_no_gap(organization):
    f.invoice(organization)
    with pytest.raises(ValidationFailed):
        f.invoice(organization, lines=[{"description": "x", "unit_price": "-1"}])
    with pytest.raises(ValidationFailed):
        f.invoice(organization, issue_date=date(2025, 3, 10), due_date=date(2025, 3, 1))
    assert f.invoice(organization).sequence_number == 2


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ("a line", "lines"),
        ([{"unit_price": "1"}], "lines[0].description"),
        ([{"description": "x"}], "lines[0].unit_price"),
        ([{"description": "x", "unit_price": "1.999"}], "lines[0].unit_price"),
        ([{"description": "x", "unit_price": "abc"}], "lines[0].unit_price"),
        ([{"description": "x", "unit_price": "1", "quantity": "0"}], "lines[0].quantity"),
        ([{"description": "x", "unit_price": "1", "tax_rate": "101"}], "lines[0].tax_rate"),
        ([{"description": "ok", "unit_price": "1"}, {"description": "x", "unit_price": "1", "x": 1}],
         "lines[1].x"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_field(organization, lines, field):
    with pytest.raises(ValidationFailed) as error:
        f.invoice(organization, lines=lines)
    assert field in error.value.details
    assert not Invoice.objects.exists()


def test_foreign_contact_or_deal_is_not_found(organization, other_organization):
    foreign = f.contact(other_organization)
    with pytest.raises(NotFound) as error:
        f.invoice(organization, contact=foreign)
    assert "contact_id" in error.value.details
    with pytest.raises(NotFound):
        f.invoice(organization, deal=f.deal(other_organization))


def test_currency_follows_the_deal_and_must_match_it(organization, contact):
    deal = f.deal(organization, contact=contact, amount="500", currency="EUR")
    assert f.invoice(organization, deal=deal).currency == "EUR"
    with pytest.raises(ValidationFailed) as error:
        f.invoice(organization, deal=deal, currency="USD")
    assert "currency" in error.value.details


def test_status_machine_send_pay_partially_then_fully(organization, contact):
    invoice = f.invoice(organization, contact=contact)
    with pytest.raises(Conflict) as draft:
        services.payment_record(organization=organization, invoice=invoice, amount="10")
    assert draft.value.code == "invoice_draft"
    invoice = services.invoice_send(organization=organization, invoice=invoice)
    assert invoice.status == InvoiceStatus.SENT and invoice.sent_at
    services.invoice_send(organization=organization, invoice=invoice)  # idempotent
    assert len(events(organization, "invoice.sent")) == 1

    services.payment_record(
        organization=organization, invoice=invoice, amount="40.00", method="card", reference="ch_1"
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.SENT and invoice.amount_paid == Decimal("40.00")
    assert invoice.balance_due == Decimal("60.00")
    assert not events(organization, "invoice.paid")
    assert not RevenueEntry.objects.exists()

    services.payment_record(organization=organization, invoice=invoice, amount="60")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_at is not None
    [paid] = events(organization, "invoice.paid")
    assert paid.data["amount_paid"] == "100.00" and paid.data["balance_due"] == "0.00"
    assert [e.data["amount"] for e in events(organization, "payment.received")] == [
        "40.00",
        "60.00",
    ]
    entry = RevenueEntry.objects.get()
    assert entry.kind == RevenueKind.INVOICE_PAID and entry.amount == Decimal("100.00")

    with pytest.raises(Conflict) as again:
        services.payment_record(organization=organization, invoice=invoice, amount="1")
    assert again.value.code == "invoice_paid"
    with pytest.raises(Conflict) as void:
        services.invoice_void(organization=organization, invoice=invoice)
    assert void.value.code == "invoice_has_payments"


@pytest.mark.parametrize(
    ("amount", "currency", "error", "code"),
    [
        ("100.01", None, Unprocessable, "overpayment"),
        ("10", "EUR", Unprocessable, "currency_mismatch"),
        ("0", None, ValidationFailed, "validation_error"),
        ("-5", None, ValidationFailed, "validation_error"),
        ("1.005", None, ValidationFailed, "validation_error"),
    ],
)
def test_bad_payments_are_refused_and_write_nothing(organization, amount, currency, error, code):
    invoice = f.sent_invoice(organization)
    with pytest.raises(error) as raised:
        services.payment_record(
            organization=organization, invoice=invoice, amount=amount, currency=currency
        )
    assert raised.value.code == code
    assert not Payment.objects.exists()
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0


def test_a_payment_reference_is_recorded_once(organization):
    invoice = f.sent_invoice(organization)
    first = services.payment_record(
        organization=organization, invoice=invoice, amount="10", reference="ch_42"
    )
    with pytest.raises(Conflict) as error:
        services.payment_record(
            organization=organization, invoice=invoice, amount="10", reference="ch_42"
        )
    assert error.value.code == "duplicate_payment"
    assert error.value.details["payment_id"] == str(first.pk)
    assert Payment.objects.count() == 1


def test_void_keeps_the_number_and_is_idempotent(organization):
    invoice = f.sent_invoice(organization)
    voided = services.invoice_void(organization=organization, invoice=invoice, reason="Twice")
    assert voided.status == InvoiceStatus.VOID and voided.void_reason == "Twice"
    services.invoice_void(organization=organization, invoice=voided)
    assert len(events(organization, "invoice.voided")) == 1
    with pytest.raises(Conflict):
        services.invoice_send(organization=organization, invoice=voided)
    assert f.invoice(organization).sequence_number == 2


def test_deliver_sends_the_invoice_by_email_through_message_send(organization, contact):
    from apps.conversations.models import Message
    from tests.providers.factories import mailgun_channel

    invoice = f.invoice(organization, contact=contact)
    with pytest.raises(Unprocessable) as no_channel:
        services.invoice_send(organization=organization, invoice=invoice, deliver=True)
    assert no_channel.value.code == "no_channel"
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.DRAFT
    mailgun_channel(organization)
    services.invoice_send(organization=organization, invoice=invoice, deliver=True)
    message = Message.objects.get()
    assert message.channel == "email" and message.subject == f"Invoice {invoice.number}"
    assert "Amount due: $100.00" in message.text


def test_overdue_job_marks_sent_invoices_past_due_once(organization):
    past = f.sent_invoice(organization, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 15))
    due_today = f.sent_invoice(
        organization, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 20)
    )
    draft = f.invoice(organization, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 2))
    now = timezone.make_aware(timezone.datetime(2025, 1, 20, 12))
    run = jobs.invoices_overdue_run(now=now)
    assert run.created == 1
    past.refresh_from_db()
    assert past.status == InvoiceStatus.OVERDUE and past.overdue_at
    assert Invoice.objects.get(pk=due_today.pk).status == InvoiceStatus.SENT
    assert Invoice.objects.get(pk=draft.pk).status == InvoiceStatus.DRAFT
    [overdue] = events(organization, "invoice.overdue")
    assert overdue.data["invoice_id"] == str(past.pk)

    assert jobs.invoices_overdue_run(now=now).created == 0  # idempotent
    services.payment_record(organization=organization, invoice=past, amount="100")
    past.refresh_from_db()
    assert past.status == InvoiceStatus.PAID  # an overdue invoice can still be paid


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_invoices_get_twenty_consecutive_numbers():
    from apps.revenue.plans import plans_ensure_defaults

    plans_ensure_defaults()
    organization = OrganizationFactory(slug="concurrent")
    numbers, errors = [], []
    barrier = threading.Barrier(20)

    def create():
        try:
            barrier.wait(timeout=10)
            invoice = f.invoice(organization)
            numbers.append((invoice.sequence_number, invoice.number))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(n for n, _ in numbers) == list(range(1, 21))
    assert len({number for _, number in numbers}) == 20
    assert InvoiceSequence.objects.get(organization=organization).next_number == 21
    assert Event.objects.filter(type="invoice.created", organization=organization).count() == 20
