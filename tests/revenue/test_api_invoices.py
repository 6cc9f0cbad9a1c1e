"""`/api/v1/invoices/`: list, create, get, send, record a payment, void; cross-tenant ids,
bad input, idempotency and query counts."""

import uuid

import pytest

from apps.revenue.models import Invoice, InvoiceLine, Payment
from tests.revenue import factories as f

pytestmark = pytest.mark.django_db

LINE = {"description": "Unlimited membership, March", "unit_price": "149.00", "tax_rate": "8.25"}


def create(api, **body):
    body.setdefault("lines", [LINE])
    return api.post("/api/v1/invoices/", body, format="json")


def assert_error(response, status: int, field: str | None = None, code: str | None = None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field:
        assert field in error["message"] or field in (error["details"] or {}), error
    if code:
        assert error["code"] == code, error
    return error


def test_create_get_and_list(api, organization, contact):
    deal = f.deal(organization, contact=contact, amount="149.00")
    response = create(
        api, contact_id=str(contact.id), deal_id=str(deal.id), due_date="2031-01-31",
        issue_date="2031-01-01", notes="Thanks!",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "INV-00001" and body["status"] == "draft"
    assert body["subtotal"] == "149.00" and body["tax_total"] == "12.29"
    assert body["total"] == "161.29" and body["balance_due"] == "161.29"
    assert body["currency"] == "USD" and body["deal_id"] == str(deal.id)
    assert body["lines"][0]["amount"] == "149.00" and body["payments"] == []

    got = api.get(f"/api/v1/invoices/{body['id']}/")
    assert got.status_code == 200 and got.json() == body
    listed = api.get("/api/v1/invoices/?status=draft")
    assert listed.json()["count"] == 1 and listed.json()["results"][0]["id"] == body["id"]
    assert api.get("/api/v1/invoices/?status=paid").json()["count"] == 0
    assert api.get(f"/api/v1/invoices/?contact_id={contact.id}").json()["count"] == 1


def test_create_and_send_at_once(api, contact):
    response = create(api, contact_id=str(contact.id), send=True)
    assert response.status_code == 201
    assert response.json()["status"] == "sent" and response.json()["sent_at"]


def test_send_pay_partially_and_fully(api, contact):
    invoice_id = create(api, contact_id=str(contact.id)).json()["id"]
    sent = api.post(f"/api/v1/invoices/{invoice_id}/send/", {}, format="json")
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    partial = api.post(
        f"/api/v1/invoices/{invoice_id}/payments/",
        {"amount": "61.29", "method": "card", "reference": "ch_1"},
        format="json",
    )
    assert partial.status_code == 201, partial.content
    assert partial.json()["payment"]["amount"] == "61.29"
    assert partial.json()["invoice"]["status"] == "sent"
    assert partial.json()["invoice"]["balance_due"] == "100.00"
    full = api.post(f"/api/v1/invoices/{invoice_id}/payments/", {"amount": 100}, format="json")
    assert full.status_code == 201
    assert full.json()["invoice"]["status"] == "paid"
    assert len(full.json()["invoice"]["payments"]) == 2
    over = api.post(f"/api/v1/invoices/{invoice_id}/payments/", {"amount": "1"}, format="json")
    assert_error(over, 409, code="invoice_paid")


def test_void(api, contact):
    invoice_id = create(api, contact_id=str(contact.id)).json()["id"]
    response = api.post(f"/api/v1/invoices/{invoice_id}/void/", {"reason": "Dup"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "void" and response.json()["void_reason"] == "Dup"
    paid_attempt = api.post(
        f"/api/v1/invoices/{invoice_id}/payments/", {"amount": "1"}, format="json"
    )
    assert_error(paid_attempt, 409, code="invoice_void")


def test_idempotency_key_replays_the_creation(api, contact):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-inv-1"}
    body = {"contact_id": str(contact.id), "lines": [LINE]}
    first = api.post("/api/v1/invoices/", body, format="json", **headers)
    second = api.post("/api/v1/invoices/", body, format="json", **headers)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    assert Invoice.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": "x"}, "lines"),
        ({"lines": [{"description": "x"}]}, "unit_price"),
        ({"lines": [{"description": "x", "unit_price": "1.234"}]}, "unit_price"),
        ({"lines": [{"description": "x", "unit_price": "-1"}]}, "unit_price"),
        ({"lines": [{"description": "x", "unit_price": "1", "tax_rate": "200"}]}, "tax_rate"),
        ({"lines": [{"description": "", "unit_price": "1"}]}, "description"),
        ({"lines": [LINE, {"description": "x", "unit_price": "abc"}]}, "[1].unit_price"),
        ({"lines": [LINE, {"description": "x", "unit_price": "1", "color": "red"}]}, "[1].color"),
        ({"lines": [LINE, "not a line"]}, "[1]"),
        ({"lines": [LINE], "due_date": "tomorrow"}, "due_date"),
        ({"lines": [LINE], "currency": "dollars"}, "currency"),
        ({"lines": [LINE], "issue_date": "2031-02-01", "due_date": "2031-01-01"}, "due_date"),
        ({"lines": [LINE], "contact": "x"}, "contact"),
        ({"lines": [LINE], "contact_id": "not-a-uuid"}, "contact_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api, body, field):
    response = api.post("/api/v1/invoices/", body, format="json")
    assert_error(response, 400, field)
    assert not Invoice.objects.exists() and not InvoiceLine.objects.exists()


def test_bad_payments(api, contact):
    invoice_id = create(api, contact_id=str(contact.id), send=True).json()["id"]
    url = f"/api/v1/invoices/{invoice_id}/payments/"
    assert_error(api.post(url, {}, format="json"), 400, "amount")
    assert_error(api.post(url, {"amount": "0"}, format="json"), 400, "amount")
    assert_error(api.post(url, {"amount": "5", "method": "bitcoin"}, format="json"), 400, "method")
    assert_error(api.post(url, {"amount": "500"}, format="json"), 422, "amount", "overpayment")
    assert_error(
        api.post(url, {"amount": "5", "currency": "EUR"}, format="json"),
        422,
        "currency",
        "currency_mismatch",
    )
    assert not Payment.objects.exists()


def test_foreign_ids_are_404(api, other_api, organization, other_organization, contact):
    mine = create(api, contact_id=str(contact.id)).json()["id"]
    foreign_contact = f.contact(other_organization)
    foreign_deal = f.deal(other_organization)
    for path in ("", "send/", "payments/", "void/"):
        url = f"/api/v1/invoices/{mine}/{path}"
        response = other_api.get(url) if not path else other_api.post(url, {}, format="json")
        assert_error(response, 404)
    assert_error(create(api, contact_id=str(foreign_contact.id)), 404, "contact_id")
    assert_error(create(api, deal_id=str(foreign_deal.id)), 404, "deal_id")
    assert_error(create(api, company_id=str(uuid.uuid4())), 404, "company_id")
    assert other_api.get("/api/v1/invoices/").json()["count"] == 0
    assert Invoice.objects.filter(organization=other_organization).count() == 0


def test_list_query_count_does_not_grow(api, organization, django_assert_max_num_queries):
    for _ in range(3):
        f.invoice(organization)
    api.get("/api/v1/usage/")  # the key's last use is recorded once a minute
    with django_assert_max_num_queries(3) as small:  # key, count, page
        assert api.get("/api/v1/invoices/").status_code == 200
    for _ in range(20):
        f.invoice(organization)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert api.get("/api/v1/invoices/").json()["count"] == 23


def test_detail_query_count(api, organization, contact, django_assert_max_num_queries):
    invoice = f.invoice(
        organization, contact=contact, lines=[dict(LINE, description=f"L{i}") for i in range(10)]
    )
    api.get("/api/v1/usage/")  # the key's last use is recorded once a minute
    with django_assert_max_num_queries(4):  # key, invoice + joins, lines, payments
        response = api.get(f"/api/v1/invoices/{invoice.pk}/")
    assert len(response.json()["lines"]) == 10


def test_schema_documents_the_invoice_endpoints(api):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for path in (
        "/api/v1/invoices/",
        "/api/v1/invoices/{id}/",
        "/api/v1/invoices/{id}/send/",
        "/api/v1/invoices/{id}/payments/",
        "/api/v1/invoices/{id}/void/",
        "/api/v1/usage/",
    ):
        assert path in paths, sorted(paths)
    create_op = paths["/api/v1/invoices/"]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["examples"]
