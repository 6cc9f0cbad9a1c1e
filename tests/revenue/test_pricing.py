"""The pricing enforcer: an AI reply may not quote a price outside the organization's own
price ranges. Many phrasings, tested directly, through the decision-guard adapter and the
API."""

from decimal import Decimal

import pytest

from apps.bookings.models import AppointmentType
from apps.revenue.models import PriceRule
from apps.revenue.pricing import (
    PRICING_RULE_KEY,
    find_quotes,
    guard_pricing,
    offer_prices,
    pricing_guard,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules(organization):
    consult = AppointmentType.objects.create(
        organization=organization, name="Consultation", slug="consult", price=Decimal("50.00")
    )
    facial = AppointmentType.objects.create(
        organization=organization, name="Signature Facial", slug="facial", price=Decimal("99")
    )
    PriceRule.objects.create(
        organization=organization,
        name="Botox",
        product="Botox",
        keywords=["tox", "wrinkle relaxer"],
        min_price=Decimal("12.00"),
        max_price=Decimal("15.00"),
        currency="USD",
        action="rewrite",
    )
    PriceRule.objects.create(
        organization=organization,
        name="Lip filler",
        product="Lip filler",
        keywords=["filler", "lip flip"],
        min_price=Decimal("600"),
        max_price=Decimal("800"),
        currency="USD",
        action="block",
    )
    PriceRule.objects.create(
        organization=organization,
        name="Facial",
        appointment_type=facial,
        min_price=Decimal("89"),
        max_price=Decimal("129"),
        currency="USD",
        action="rewrite",
    )
    return {"consult": consult, "facial": facial}


def check(organization, text, **kwargs):
    return pricing_guard(organization=organization, text=text, **kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "Botox is $12 per unit.",
        "Botox runs 12-15 dollars a unit",
        "Tox is between $12 and $15 per unit.",
        "Our botox? It's $13.50 a unit.",
        "Botox: USD 14 per unit",
        "Lip filler starts at $600, most people spend around $750.",
        "A lip flip is 800 bucks.",
        "The consultation is $50 and is credited towards treatment.",
        "Our Signature Facial costs $99.",
        "Facials are $89 to $129 depending on add-ons.",
        "We're open until 8:30 tonight and 20% of clients book twice.",
        "Call us at 555-0100 or reply 2 to book.",
        "Save $20 on your first facial this week!",
        "Bring a $25 deposit to hold the slot.",
        "Get $50 off lip filler in March.",
        "Botox is $12 per unit, lip filler $650.",
        "",
    ],
)
def test_allowed_replies_pass_unchanged(organization, rules, text):
    result = check(organization, text)
    assert result.ok, [v.as_dict() for v in result.violations]
    assert result.text == text and not result.blocked and not result.rewritten


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Botox is just $5 per unit!", "Botox is just $12-$15 per unit!"),
        ("Botox is $9.99/unit this week", "Botox is $12-$15/unit this week"),
        ("Tox is 20 dollars a unit.", "Tox is $12-$15 a unit."),
        ("Botox is USD 25 per unit.", "Botox is $12-$15 per unit."),
        ("Botox is between $8 and $10 per unit.", "Botox is between $12 and $15 per unit."),
        ("Botox runs $10-$14 per unit.", "Botox runs $12-$15 per unit."),
        ("Botox runs 10 to 14 dollars a unit.", "Botox runs $12-$15 a unit."),
        ("Wrinkle relaxer: twenty bucks a unit.", "Wrinkle relaxer: $12-$15 a unit."),
        ("Our Signature Facial is $150.", "Our Signature Facial is $89-$129."),
        ("Facials are only $1.5k", "Facials are only $89-$129"),
        ("The consultation is $75.", "The consultation is $50."),
        ("Botox is €13 per unit.", "Botox is $12-$15 per unit."),
        ("Botox is 13,00 € per unit.", "Botox is $12-$15 per unit."),
        (
            "A consultation is $50 and botox is $30 per unit.",
            "A consultation is $50 and botox is $12-$15 per unit.",
        ),
    ],
)
def test_out_of_range_quotes_are_rewritten_with_the_rules_range(
    organization, rules, text, expected
):
    result = check(organization, text)
    assert not result.ok and result.rewritten and not result.blocked
    assert result.text == expected
    # the rewrite is itself allowed: the guard is idempotent
    assert check(organization, result.text).ok


@pytest.mark.parametrize(
    "text",
    [
        "Lip filler is $300 this month!",
        "Filler runs 400-500 dollars.",
        "We can do your lips for £500.",  # 'lips' names no offer; outside every rule
        "Everything is 50% off, just $5!",
        "It's only $3.",
    ],
)
def test_block_rules_and_unknown_offers_block_the_reply(organization, rules, text):
    result = check(organization, text)
    assert result.blocked and not result.ok
    assert result.text == text  # a blocked text is not rewritten: it must not be sent


def test_a_violation_names_the_offer_the_range_and_why(organization, rules):
    [violation] = check(organization, "Botox is $5 per unit").violations
    assert violation.as_dict() == {
        "quoted": "$5",
        "amounts": ["5"],
        "currency": "USD",
        "offer": "Botox",
        "allowed": "$12-$15",
        "reason": "5.00 USD is outside Botox's range (12.00-15.00 USD)",
        "action": "rewrite",
    }
    [currency] = check(organization, "Botox is €13 a unit").violations
    assert currency.reason == "quoted in EUR, but Botox is priced in USD"


def test_the_conversation_offer_applies_to_amounts_that_name_none(organization, rules):
    assert check(organization, "It's $75.").blocked  # no offer named, outside every rule
    result = check(organization, "It's $75.", appointment_type=rules["consult"])
    assert result.text == "It's $50." and result.rewritten
    assert check(organization, "It's $50.", appointment_type=rules["consult"].pk).ok


def test_an_amount_about_no_offer_passes_when_within_some_rule(organization, rules):
    assert check(organization, "Most treatments are around $700.").ok


def test_no_rules_no_check(organization):
    assert check(organization, "Everything is $1!").ok
    assert offer_prices(organization=organization) == []


def test_inactive_rules_and_other_organizations_rules_do_not_apply(
    organization, other_organization, rules
):
    PriceRule.objects.filter(organization=organization, name="Botox").update(is_active=False)
    PriceRule.objects.create(
        organization=other_organization,
        name="Botox",
        product="Botox",
        min_price=Decimal("1"),
        max_price=Decimal("2"),
        currency="USD",
    )
    names = {o.name for o in offer_prices(organization=organization)}
    assert "Botox" not in names and {"Lip filler", "Facial", "Consultation"} <= names


def test_dollar_is_the_organizations_dollar_currency(organization, rules):
    organization.currency = "CAD"
    [quote] = find_quotes("It is $20", dollar="CAD")
    assert quote.currency == "CAD"
    assert (
        check(organization, "Botox is $13 a unit.").violations[0].reason.startswith("quoted in CAD")
    )


@pytest.mark.parametrize(
    ("text", "amounts", "currency"),
    [
        ("$1,200.50", ["1200.50"], "USD"),
        ("1.200,50 €", ["1200.50"], "EUR"),
        ("US$150", ["150"], "USD"),
        ("CA$ 99", ["99"], "CAD"),
        ("GBP 40", ["40"], "GBP"),
        ("40 quid", ["40"], "GBP"),
        ("forty-five pounds", ["45"], "GBP"),
        ("one hundred and fifty dollars", ["150"], "USD"),
        ("a dollar", ["1"], "USD"),
        ("$2k", ["2000"], "USD"),
        ("150$", ["150"], "USD"),
        ("$100 - $150", ["100", "150"], "USD"),
        ("$100\u2013150", ["100", "150"], "USD"),  # en dash
    ],
)
def test_amount_phrasings(text, amounts, currency):
    [quote] = find_quotes(text)
    assert list(quote.amounts) == [Decimal(a) for a in amounts]
    assert quote.currency == currency


@pytest.mark.parametrize(
    "text",
    [
        "See you at 5:30",
        "20% off",
        "3 sessions a week",
        "Room 101",
        "Call 555-0100",
        "2 for 1",
        "Reply 1 for yes",
        "$ signs scare people",
        "save $20",
        "a $50 gift card",
        "$10 cashback",
    ],
)
def test_not_prices(text):
    assert find_quotes(text) == []


class FakeReport:
    def __init__(self):
        self.rules_checked, self.interventions = [], []

    def checked(self, key):
        self.rules_checked.append(key)

    def record(self, rule, index, action, outcome, why):
        self.interventions.append((rule, index, outcome, why))


class FakeContext:
    def __init__(self, organization, appointment_type=None):
        self.organization = organization
        self.appointment_type = appointment_type


def test_guard_adapter_rewrites_or_blocks_send_actions(organization, rules):
    actions = [
        {"type": "send_message", "channel": "sms", "body": "Botox is $5 a unit."},
        {"type": "create_task", "title": "Call back"},
        {"type": "send_message", "channel": "sms", "body": "Lip filler is $100!"},
        {"type": "send_message", "channel": "sms", "body": "See you Thursday."},
    ]
    report = FakeReport()
    guard_pricing(FakeContext(organization), actions, report)
    assert actions[0]["body"] == "Botox is $12-$15 a unit."
    assert actions[1] == {"type": "create_task", "title": "Call back"}
    assert actions[2]["type"] == "no_action" and "Send blocked" in actions[2]["reason"]
    assert actions[3]["body"] == "See you Thursday."
    assert report.rules_checked == [PRICING_RULE_KEY]
    assert [(i[1], i[2]) for i in report.interventions] == [(0, "rewritten"), (2, "blocked")]


def test_guard_adapter_reads_the_rules_once(organization, rules, django_assert_num_queries):
    actions = [{"type": "send_message", "channel": "sms", "body": f"Botox is ${n}"} for n in (1, 2)]
    with django_assert_num_queries(2):  # price rules, appointment types
        guard_pricing(FakeContext(organization), actions, FakeReport())


def test_pricing_check_api(api, organization, rules, other_api):
    response = api.post(
        "/api/v1/pricing/check/", {"text": "Botox is just $5 per unit!"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["rewritten"] and body["text"] == "Botox is just $12-$15 per unit!"
    assert body["violations"][0]["offer"] == "Botox"
    context = api.post(
        "/api/v1/pricing/check/", {"text": "It's $75", "appointment_type": "consult"}, format="json"
    )
    assert context.json()["text"] == "It's $50"
    assert other_api.post("/api/v1/pricing/check/", {"text": "$5"}, format="json").json()["ok"]
    missing = other_api.post(
        "/api/v1/pricing/check/", {"text": "$5", "appointment_type": "consult"}, format="json"
    )
    assert missing.status_code == 404
    assert api.post("/api/v1/pricing/check/", {}, format="json").status_code == 400


def test_price_rule_constraints(organization, rules):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRule.objects.create(
            organization=organization, name="Bad", product="X", min_price=10, max_price=5,
            currency="USD",
        )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRule.objects.create(
            organization=organization, name="Neither", min_price=1, max_price=5, currency="USD"
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRule.objects.create(
            organization=organization, name="Dup", product="BOTOX", min_price=1, max_price=5,
            currency="USD",
        )  # fmt: skip
