"""Core API for revenue: invoices (list, create, get, send, payments, void), plan usage,
the pricing check, revenue reports, sequence enrolments and the unsubscribe link.

Thin views: parse with an InputSerializer, call one service or selector, render with an
OutputSerializer. Ids that are not the organization's are 404 naming the field. Money is a
decimal string with its currency (`"149.00"`, `"USD"`).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import OrganizationAPIView
from apps.core.errors import NotFound
from apps.core.pagination import page_of, paginated_response
from apps.revenue import limits, pricing, selectors, services
from apps.revenue.models import InvoiceStatus, PaymentMethod, Sequence

# --- shared ---------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """Refuses unknown fields, so a typo is a 400 rather than silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {str(k)[:100]: ["Unknown field."] for k in unknown}
                )
        return super().to_internal_value(data)


def _parse(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class RevenueView(OrganizationAPIView):
    @property
    def actor(self) -> str:
        return str(self.request.user or "api")[:100]

    def contact(self, contact_id):
        from apps.crm.selectors import contact_live_get

        if contact_id is None:
            return None
        return contact_live_get(
            organization=self.organization, contact_id=contact_id, field_name="contact_id"
        )

    def deal(self, deal_id):
        from apps.crm.selectors import deal_get

        if deal_id is None:
            return None
        return deal_get(organization=self.organization, deal_id=deal_id, field_name="deal_id")

    def company(self, company_id):
        from apps.crm.models import Company

        if company_id is None:
            return None
        company = Company.objects.filter(organization=self.organization, pk=company_id).first()
        if company is None:
            raise NotFound(
                "company_id: Company not found.", details={"company_id": ["Company not found."]}
            )
        return company

    def invoice(self, pk):
        return selectors.invoice_get(organization=self.organization, invoice_id=pk)


# --- invoices -------------------------------------------------------------------------------


class LineOutput(serializers.Serializer):
    position = serializers.IntegerField()
    description = serializers.CharField()
    product = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=10, decimal_places=3)
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = serializers.DecimalField(max_digits=5, decimal_places=2)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_amount = serializers.DecimalField(max_digits=12, decimal_places=2)


class PaymentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    invoice_id = serializers.UUIDField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    method = serializers.CharField()
    reference = serializers.CharField()
    received_at = serializers.DateTimeField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class InvoiceOutput(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    status = serializers.CharField(help_text="draft, sent, overdue, paid or void")
    contact_id = serializers.UUIDField(allow_null=True)
    company_id = serializers.UUIDField(allow_null=True)
    deal_id = serializers.UUIDField(allow_null=True)
    bill_to_name = serializers.CharField()
    bill_to_email = serializers.CharField()
    bill_to_address = serializers.CharField()
    currency = serializers.CharField()
    issue_date = serializers.DateField()
    due_date = serializers.DateField()
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    amount_paid = serializers.DecimalField(max_digits=12, decimal_places=2)
    balance_due = serializers.DecimalField(max_digits=12, decimal_places=2)
    notes = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    overdue_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    void_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class InvoiceDetailOutput(InvoiceOutput):
    lines = LineOutput(many=True, source="lines.all")
    payments = PaymentOutput(many=True, source="payments.all")


class InvoiceFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=InvoiceStatus.choices, required=False)
    contact_id = serializers.UUIDField(required=False)
    deal_id = serializers.UUIDField(required=False)


class LineInput(StrictSerializer):
    description = serializers.CharField(max_length=300)
    quantity = serializers.DecimalField(
        max_digits=10, decimal_places=3, required=False, default=1, min_value=Decimal("0.001")
    )
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    tax_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, default=0, min_value=0, max_value=100
    )
    product = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class LinesField(serializers.ListField):
    """Invoice lines; an error names the line and field: `lines: [1].unit_price: ...`."""

    child = LineInput()

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            flat = {}
            for index, errors in exc.detail.items():
                if isinstance(errors, dict):
                    flat.update({f"[{index}].{name}": value for name, value in errors.items()})
                else:
                    flat[f"[{index}]"] = errors
            raise serializers.ValidationError(flat) from None


class InvoiceCreateInput(StrictSerializer):
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    company_id = serializers.UUIDField(required=False, allow_null=True)
    deal_id = serializers.UUIDField(required=False, allow_null=True)
    currency = serializers.CharField(max_length=3, required=False)
    issue_date = serializers.DateField(required=False)
    due_date = serializers.DateField(required=False)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    bill_to_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    bill_to_email = serializers.EmailField(required=False, allow_blank=True)
    bill_to_address = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    lines = LinesField(allow_empty=False, max_length=100)
    send = serializers.BooleanField(required=False, default=False)


LINE_EXAMPLE = {
    "position": 1,
    "description": "Unlimited membership, March",
    "product": "unlimited-membership",
    "quantity": "1.000",
    "unit_price": "149.00",
    "tax_rate": "8.25",
    "amount": "149.00",
    "tax_amount": "12.29",
}
INVOICE_EXAMPLE = {
    "id": "0190f3c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "number": "INV-00042",
    "status": "sent",
    "contact_id": "0190f3c1-0000-7000-8000-000000000001",
    "company_id": None,
    "deal_id": "0190f3c1-0000-7000-8000-000000000002",
    "bill_to_name": "Maya Chen",
    "bill_to_email": "maya.chen@example.com",
    "bill_to_address": "",
    "currency": "USD",
    "issue_date": "2025-03-01",
    "due_date": "2025-03-15",
    "subtotal": "149.00",
    "tax_total": "12.29",
    "total": "161.29",
    "amount_paid": "50.00",
    "balance_due": "111.29",
    "notes": "",
    "sent_at": "2025-03-01T14:02:11Z",
    "overdue_at": None,
    "paid_at": None,
    "voided_at": None,
    "void_reason": "",
    "created_at": "2025-03-01T14:00:00Z",
}
PAYMENT_EXAMPLE = {
    "id": "0190f3c1-0000-7000-8000-000000000009",
    "invoice_id": INVOICE_EXAMPLE["id"],
    "amount": "50.00",
    "currency": "USD",
    "method": "card",
    "reference": "ch_3OqK2L",
    "received_at": "2025-03-02T10:00:00Z",
    "note": "",
    "created_at": "2025-03-02T10:00:01Z",
}
INVOICE_DETAIL_EXAMPLE = {**INVOICE_EXAMPLE, "lines": [LINE_EXAMPLE], "payments": [PAYMENT_EXAMPLE]}


class InvoiceListView(RevenueView):
    @extend_schema(
        operation_id="invoices_list",
        tags=["invoices"],
        parameters=[InvoiceFilter],
        responses=page_of("PaginatedInvoiceList", InvoiceOutput),
        examples=[
            OpenApiExample(
                "A page of invoices",
                value={"count": 1, "next": None, "previous": None, "results": [INVOICE_EXAMPLE]},
                response_only=True,
            )
        ],
        description="Newest number first. Filter by `status`, `contact_id`, `deal_id`.",
    )
    def get(self, request):
        filters = _parse(InvoiceFilter, request.query_params)
        invoices = selectors.invoice_list(organization=self.organization, **filters)
        return paginated_response(self, invoices, InvoiceOutput)

    @extend_schema(
        operation_id="invoices_create",
        tags=["invoices"],
        request=InvoiceCreateInput,
        responses={201: InvoiceDetailOutput},
        examples=[
            OpenApiExample(
                "A membership invoice, sent at once",
                value={
                    "contact_id": INVOICE_EXAMPLE["contact_id"],
                    "deal_id": INVOICE_EXAMPLE["deal_id"],
                    "due_date": "2025-03-15",
                    "lines": [
                        {
                            "description": "Unlimited membership, March",
                            "unit_price": "149.00",
                            "tax_rate": "8.25",
                        }
                    ],
                    "send": True,
                },
                request_only=True,
            ),
            OpenApiExample("Created", value=INVOICE_DETAIL_EXAMPLE, response_only=True),
        ],
        description="Creates a draft numbered from the organization's sequence (consecutive, "
        "no gaps) and emits `invoice.created`; with `send: true` it is also sent "
        "(`invoice.sent`). Each line is quantity x unit price rounded half-up to cents; tax "
        "per line at `tax_rate` percent. The currency defaults to the deal's, else the "
        "organization's; the due date to 14 days after the issue date.",
    )
    def post(self, request):
        data = _parse(InvoiceCreateInput, request.data)
        invoice = services.invoice_create(
            organization=self.organization,
            lines=[dict(line) for line in data["lines"]],
            contact=self.contact(data.get("contact_id")),
            company=self.company(data.get("company_id")),
            deal=self.deal(data.get("deal_id")),
            currency=data.get("currency"),
            issue_date=data.get("issue_date"),
            due_date=data.get("due_date"),
            notes=data["notes"],
            bill_to_name=data.get("bill_to_name", ""),
            bill_to_email=data.get("bill_to_email", ""),
            bill_to_address=data.get("bill_to_address", ""),
            actor=self.actor,
        )
        if data["send"]:
            services.invoice_send(organization=self.organization, invoice=invoice, actor=self.actor)
        return Response(InvoiceDetailOutput(self.invoice(invoice.pk)).data, status=201)


class InvoiceDetailView(RevenueView):
    @extend_schema(
        operation_id="invoices_get",
        tags=["invoices"],
        responses=InvoiceDetailOutput,
        examples=[OpenApiExample("An invoice", value=INVOICE_DETAIL_EXAMPLE, response_only=True)],
    )
    def get(self, request, pk):
        return Response(InvoiceDetailOutput(self.invoice(pk)).data)


class InvoiceSendInput(StrictSerializer):
    deliver = serializers.BooleanField(required=False, default=False)


class InvoiceSendView(RevenueView):
    @extend_schema(
        operation_id="invoices_send",
        tags=["invoices"],
        request=InvoiceSendInput,
        responses=InvoiceDetailOutput,
        examples=[
            OpenApiExample("Mark as sent", value={}, request_only=True),
            OpenApiExample("Also e-mail it", value={"deliver": True}, request_only=True),
            OpenApiExample("Sent", value=INVOICE_DETAIL_EXAMPLE, response_only=True),
        ],
        description="draft → sent, `invoice.sent`. With `deliver: true` the invoice is also "
        "queued to the contact by e-mail (422 when it cannot be). Sending a sent or overdue "
        "invoice changes nothing; a paid or void one is 409.",
    )
    def post(self, request, pk):
        invoice = self.invoice(pk)
        data = _parse(InvoiceSendInput, request.data)
        invoice = services.invoice_send(
            organization=self.organization,
            invoice=invoice,
            deliver=data["deliver"],
            actor=self.actor,
        )
        return Response(InvoiceDetailOutput(self.invoice(invoice.pk)).data)


class PaymentInput(StrictSerializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    currency = serializers.CharField(max_length=3, required=False)
    method = serializers.ChoiceField(choices=PaymentMethod.choices, required=False)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True)
    received_at = serializers.DateTimeField(required=False)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True)


class PaymentRecordedOutput(serializers.Serializer):
    payment = PaymentOutput()
    invoice = InvoiceDetailOutput()


class InvoicePaymentsView(RevenueView):
    @extend_schema(
        operation_id="invoices_record_payment",
        tags=["invoices"],
        request=PaymentInput,
        responses={201: PaymentRecordedOutput},
        examples=[
            OpenApiExample(
                "A card payment",
                value={"amount": "50.00", "method": "card", "reference": "ch_3OqK2L"},
                request_only=True,
            ),
            OpenApiExample(
                "Recorded",
                value={"payment": PAYMENT_EXAMPLE, "invoice": INVOICE_DETAIL_EXAMPLE},
                response_only=True,
            ),
        ],
        description="Partial or full. `payment.received`; the payment that settles the "
        "balance marks the invoice paid (`invoice.paid`) and records the collected revenue. "
        "409 for a draft, paid or void invoice or a `reference` already recorded; 422 "
        "`overpayment` or `currency_mismatch`.",
    )
    def post(self, request, pk):
        invoice = self.invoice(pk)
        data = _parse(PaymentInput, request.data)
        payment = services.payment_record(
            organization=self.organization,
            invoice=invoice,
            amount=data["amount"],
            currency=data.get("currency"),
            method=data.get("method", PaymentMethod.OTHER),
            reference=data.get("reference", ""),
            received_at=data.get("received_at"),
            note=data.get("note", ""),
            actor=self.actor,
        )
        body = {"payment": payment, "invoice": self.invoice(pk)}
        return Response(PaymentRecordedOutput(body).data, status=201)


class InvoiceVoidInput(StrictSerializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class InvoiceVoidView(RevenueView):
    @extend_schema(
        operation_id="invoices_void",
        tags=["invoices"],
        request=InvoiceVoidInput,
        responses=InvoiceDetailOutput,
        examples=[
            OpenApiExample("Void", value={"reason": "Billed twice"}, request_only=True),
            OpenApiExample(
                "Voided",
                value={**INVOICE_DETAIL_EXAMPLE, "status": "void", "payments": []},
                response_only=True,
            ),
        ],
        description="An unpaid invoice becomes void (`invoice.voided`); its number stays "
        "used. Voiding a void invoice changes nothing; one with payments is 409.",
    )
    def post(self, request, pk):
        invoice = self.invoice(pk)
        data = _parse(InvoiceVoidInput, request.data)
        services.invoice_void(
            organization=self.organization,
            invoice=invoice,
            reason=data["reason"],
            actor=self.actor,
        )
        return Response(InvoiceDetailOutput(self.invoice(pk)).data)


# --- usage, pricing, reports --------------------------------------------------------------------


class LimitOutput(serializers.Serializer):
    limit = serializers.CharField()
    label = serializers.CharField()
    value = serializers.IntegerField(allow_null=True, help_text="null: unlimited")
    usage = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True)
    period = serializers.CharField(allow_null=True)
    period_label = serializers.CharField()
    exceeded = serializers.BooleanField()


class PlanOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    billing_period = serializers.CharField()


class UsageOutput(serializers.Serializer):
    plan = PlanOutput(allow_null=True)
    limits = LimitOutput(many=True)


USAGE_EXAMPLE = {
    "plan": {
        "key": "starter",
        "name": "Starter",
        "price": "49.00",
        "currency": "USD",
        "billing_period": "month",
    },
    "limits": [
        {
            "limit": "contacts",
            "label": "contacts",
            "value": 10000,
            "usage": 1312,
            "remaining": 8688,
            "period": None,
            "period_label": "",
            "exceeded": False,
        },
        {
            "limit": "outbound_messages_per_day",
            "label": "outbound messages per day",
            "value": 2000,
            "usage": 2000,
            "remaining": 0,
            "period": "day",
            "period_label": "2025-03-14",
            "exceeded": True,
        },
    ],
}


class UsageView(RevenueView):
    @extend_schema(
        operation_id="usage_get",
        tags=["plan"],
        responses=UsageOutput,
        examples=[OpenApiExample("Usage", value=USAGE_EXAMPLE, response_only=True)],
        description="The organization's plan and, per limit, its value (null = unlimited) "
        "and current usage. Days and months are the organization's time zone's. A create "
        "that would pass a limit is `403 limit_exceeded` naming it.",
    )
    def get(self, request):
        plan = limits.plan_for(self.organization)
        rows = limits.usage_summary(organization=self.organization)
        return Response(UsageOutput({"plan": plan, "limits": rows}).data)


class PricingCheckInput(StrictSerializer):
    text = serializers.CharField(max_length=5000)
    appointment_type = serializers.SlugField(required=False, help_text="The offer in context.")


class PricingViolationOutput(serializers.Serializer):
    quoted = serializers.CharField()
    amounts = serializers.ListField(child=serializers.CharField())
    currency = serializers.CharField()
    offer = serializers.CharField(allow_null=True)
    allowed = serializers.CharField()
    reason = serializers.CharField()
    action = serializers.CharField()


class PricingCheckOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    blocked = serializers.BooleanField()
    rewritten = serializers.BooleanField()
    text = serializers.CharField()
    violations = PricingViolationOutput(many=True)


class PricingCheckView(RevenueView):
    @extend_schema(
        operation_id="pricing_check",
        tags=["plan"],
        request=PricingCheckInput,
        responses=PricingCheckOutput,
        examples=[
            OpenApiExample(
                "A reply quoting too little",
                value={"text": "Botox is just $5 per unit this week!"},
                request_only=True,
            ),
            OpenApiExample(
                "Rewritten to the allowed range",
                value={
                    "ok": False,
                    "blocked": False,
                    "rewritten": True,
                    "text": "Botox is just $12-$15 per unit this week!",
                    "violations": [
                        {
                            "quoted": "$5",
                            "amounts": ["5"],
                            "currency": "USD",
                            "offer": "Botox",
                            "allowed": "$12-$15",
                            "reason": "5.00 USD is outside Botox's range (12.00-15.00 USD)",
                            "action": "rewrite",
                        }
                    ],
                },
                response_only=True,
            ),
        ],
        description="Runs the pricing enforcer on a proposed reply: every price it quotes "
        "must be within the organization's price rule for the offer. Reads only (POST so "
        "long texts fit).",
    )
    def post(self, request):
        from apps.bookings.models import AppointmentType

        data = _parse(PricingCheckInput, request.data)
        appointment_type = None
        if data.get("appointment_type"):
            appointment_type = AppointmentType.objects.filter(
                organization=self.organization, slug=data["appointment_type"]
            ).first()
            if appointment_type is None:
                raise NotFound(
                    "appointment_type: Appointment type not found.",
                    details={"appointment_type": ["not found"]},
                )
        check = pricing.pricing_guard(
            organization=self.organization, text=data["text"], appointment_type=appointment_type
        )
        return Response(PricingCheckOutput(check.as_dict()).data)


class RevenueReportInput(serializers.Serializer):
    months = serializers.IntegerField(required=False, default=12, min_value=1, max_value=36)


class MoneyByCurrency(serializers.DictField):
    child = serializers.CharField()


class MonthRevenueOutput(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")
    booked = MoneyByCurrency()
    collected = MoneyByCurrency()


class SourceRevenueOutput(serializers.Serializer):
    source = serializers.CharField()
    deals = serializers.IntegerField()
    booked = MoneyByCurrency()
    collected = MoneyByCurrency()


class RevenueReportOutput(serializers.Serializer):
    currency = serializers.CharField()
    by_month = MonthRevenueOutput(many=True)
    by_source = SourceRevenueOutput(many=True)


class RevenueReportView(RevenueView):
    @extend_schema(
        operation_id="revenue_report",
        tags=["revenue"],
        parameters=[RevenueReportInput],
        responses=RevenueReportOutput,
        examples=[
            OpenApiExample(
                "Two months",
                value={
                    "currency": "USD",
                    "by_month": [
                        {"month": "2025-02", "booked": {"USD": "1490.00"}, "collected": {}},
                        {
                            "month": "2025-03",
                            "booked": {"USD": "399.00"},
                            "collected": {"USD": "161.29"},
                        },
                    ],
                    "by_source": [
                        {
                            "source": "instagram",
                            "deals": 3,
                            "booked": {"USD": "1889.00"},
                            "collected": {"USD": "161.29"},
                        }
                    ],
                },
                response_only=True,
            )
        ],
        description="Booked (won deals) and collected (paid invoices) revenue per month of "
        "the organization's time zone, and per source channel over the same months. Per "
        "currency; never summed across currencies.",
    )
    def get(self, request):
        months = _parse(RevenueReportInput, request.query_params)["months"]
        by_month = selectors.revenue_by_month(organization=self.organization, months=months)
        since = timezone.now() - timedelta(days=31 * months)
        by_source = selectors.revenue_by_source(organization=self.organization, since=since)

        def money(values: dict) -> dict:
            return {currency: f"{amount:.2f}" for currency, amount in values.items()}

        return Response(
            {
                "currency": self.organization.currency,
                "by_month": [
                    {
                        "month": m.month.strftime("%Y-%m"),
                        "booked": money(m.booked),
                        "collected": money(m.collected),
                    }
                    for m in by_month
                ],
                "by_source": [
                    {
                        "source": s.source or "unknown",
                        "deals": s.deals,
                        "booked": money(s.booked),
                        "collected": money(s.collected),
                    }
                    for s in by_source
                ],
            }
        )


# --- sequences ------------------------------------------------------------------------------


class EnrollInput(StrictSerializer):
    contact_id = serializers.UUIDField()
    lead_id = serializers.UUIDField(required=False, allow_null=True)


class EnrollmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sequence_id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    lead_id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField()
    next_step = serializers.IntegerField()
    next_send_at = serializers.DateTimeField(allow_null=True)
    exit_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class SequenceEnrollView(RevenueView):
    @extend_schema(
        operation_id="sequences_enroll",
        tags=["sequences"],
        request=EnrollInput,
        responses={201: EnrollmentOutput, 200: EnrollmentOutput},
        examples=[
            OpenApiExample(
                "Enrol a contact",
                value={"contact_id": INVOICE_EXAMPLE["contact_id"]},
                request_only=True,
            )
        ],
        description="Enrol a contact in an outreach sequence: 201, or 200 with the active "
        "enrolment it already has. Steps are sent by the sequences job; the enrolment stops on "
        "a reply, an opt-out (unsubscribe), a booking or an exit status.",
    )
    def post(self, request, pk):
        from apps.crm.selectors import lead_get

        sequence = self.get_scoped_object(Sequence, pk=pk)
        data = _parse(EnrollInput, request.data)
        contact = self.contact(data["contact_id"])
        lead = None
        if data.get("lead_id"):
            lead = lead_get(
                organization=self.organization, lead_id=data["lead_id"], field_name="lead_id"
            )
        enrollment, created = services.sequence_enroll(
            organization=self.organization,
            sequence=sequence,
            contact=contact,
            lead=lead,
            enrolled_by=self.actor,
        )
        return Response(EnrollmentOutput(enrollment).data, status=201 if created else 200)


class UnsubscribeView(APIView):
    """`/api/v1/unsubscribe/<token>/`: the link in sequence e-mails (no API key; the token
    is signed). GET shows what it would do (mail scanners follow links); POST opts out."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="unsubscribe_preview",
        tags=["sequences"],
        summary="What an unsubscribe link would do (mail scanners may follow links)",
        auth=[],
        responses={
            200: inline_serializer(
                "UnsubscribePreview",
                {"channel": serializers.CharField(), "confirm": serializers.CharField()},
            )
        },
        examples=[
            OpenApiExample(
                "Preview",
                value={"channel": "email", "confirm": "POST to this URL to unsubscribe."},
                response_only=True,
            )
        ],
    )
    def get(self, request, token):
        from django.core import signing

        from apps.revenue.jobs import UNSUBSCRIBE_SALT

        try:
            _, _, channel = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        except (signing.BadSignature, ValueError, TypeError):
            raise NotFound("This unsubscribe link is not valid.") from None
        return Response({"channel": channel, "confirm": "POST to this URL to unsubscribe."})

    @extend_schema(
        operation_id="unsubscribe",
        tags=["sequences"],
        summary="Opt out of the channel the link was sent on (RFC 8058 one-click)",
        auth=[],
        request=None,
        responses={
            200: inline_serializer("Unsubscribed", {"unsubscribed": serializers.BooleanField()})
        },
        examples=[OpenApiExample("Done", value={"unsubscribed": True}, response_only=True)],
    )
    def post(self, request, token):
        from apps.core.errors import DomainError
        from apps.revenue.jobs import unsubscribe

        try:
            unsubscribe(token=token)
        except DomainError:
            raise NotFound("This unsubscribe link is not valid.") from None
        return Response({"unsubscribed": True})
