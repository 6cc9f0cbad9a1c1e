"""Credits: the grant on first use, monthly grants and expiry, top-ups, what a decision
costs, 402 when exhausted, and no overdraft under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connections

from apps.core.errors import PaymentRequired, ValidationFailed
from apps.decisions.credits import (
    credits_account,
    credits_grant_monthly,
    credits_plan_grant,
    credits_top_up,
)
from apps.decisions.models import ConversationMemory, CreditAccount, CreditLedgerEntry, Decision
from apps.decisions.selectors import decision_subject_get
from apps.decisions.services import decision_make, decision_prepare, decision_record
from apps.events.models import Event
from tests.decisions import factories as f

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_engine")]


def _ledger(org) -> list[tuple[str, int]]:
    return list(
        CreditLedgerEntry.objects.filter(organization=org)
        .order_by("created_at", "id")
        .values_list("kind", "amount")
    )


def test_a_new_organization_can_decide_out_of_the_box(fitness, ana):
    assert not CreditAccount.objects.filter(organization=fitness).exists()
    decision = f.decide(fitness, ana, message="hi")
    account = CreditAccount.objects.get(organization=fitness)
    assert (account.plan_balance, account.topup_balance, account.plan_period) == (499, 0, "2030-03")
    assert _ledger(fitness) == [("plan_grant", 500), ("decision", -1)]
    entry = CreditLedgerEntry.objects.get(kind="decision")
    assert entry.decision_id == decision.pk and entry.plan_balance_after == 499
    assert decision.credits_used == 1


def test_plan_allowance_follows_the_plan(fitness):
    fitness.plan = "growth"
    fitness.save()
    assert credits_account(organization=fitness).balance == 15_000


def test_monthly_grant_expires_unused_plan_credits_but_keeps_top_ups(fitness):
    march = datetime(2030, 3, 10, tzinfo=UTC)
    credits_account(organization=fitness, now=march)
    credits_top_up(organization=fitness, amount=40, note="invoice 7", now=march)
    CreditAccount.objects.filter(organization=fitness).update(plan_balance=120)
    april = datetime(2030, 4, 1, 0, 5, tzinfo=UTC)
    assert credits_grant_monthly(now=april) == 1
    assert credits_grant_monthly(now=april) == 0  # idempotent
    assert credits_plan_grant(organization=fitness, now=april) is None
    account = CreditAccount.objects.get(organization=fitness)
    assert (account.plan_balance, account.topup_balance, account.plan_period) == (
        500,
        40,
        "2030-04",
    )
    assert _ledger(fitness)[-2:] == [("plan_expiry", -120), ("plan_grant", 500)]


def test_first_use_in_a_new_month_grants_it_even_before_the_beat_job(fitness, ana):
    credits_account(organization=fitness, now=datetime(2030, 2, 10, tzinfo=UTC))
    f.decide(fitness, ana, message="hi", now=f.NOW)  # March
    account = CreditAccount.objects.get(organization=fitness)
    assert (account.plan_period, account.plan_balance) == ("2030-03", 499)


def test_plan_credits_are_used_before_top_ups(fitness, ana):
    credits_account(organization=fitness, now=f.NOW)
    credits_top_up(organization=fitness, amount=10, now=f.NOW)
    CreditAccount.objects.filter(organization=fitness).update(plan_balance=1)
    f.decide(fitness, ana, message="hi")
    f.decide(fitness, ana, message="hello again", now=f.NOW + timedelta(minutes=1))
    account = CreditAccount.objects.get(organization=fitness)
    assert (account.plan_balance, account.topup_balance) == (0, 9)


@pytest.mark.parametrize("amount", [0, -5, 10_000_001, 2.5, True])
def test_top_up_amount_is_validated(fitness, amount):
    with pytest.raises(ValidationFailed):
        credits_top_up(organization=fitness, amount=amount)


def test_top_up_command(fitness, capsys):
    call_command("credits_top_up", "--org", fitness.slug, "--amount", "250", "--json")
    assert '"balance": 750' in capsys.readouterr().out


def test_exhausted_credits_are_a_clear_402_and_nothing_is_written(api, organization):
    who = f.contact(organization)
    credits_account(organization=organization)
    CreditAccount.objects.filter(organization=organization).update(plan_balance=0)
    response = api.post(
        "/api/v1/decisions/",
        {"contact_id": str(who.pk), "trigger": "message.received", "message": "hi"},
        format="json",
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "credits_exhausted"
    assert "used all its AI credits" in error["message"]
    assert error["details"]["balance"] == 0 and error["details"]["required"] == 1
    assert error["details"]["renews_at"].endswith("-01T00:00:00Z")
    assert not Decision.objects.exists()
    assert not Event.objects.filter(type="decision.made").exists()
    assert not ConversationMemory.objects.exists()


def test_credits_running_out_between_check_and_record_is_402(fitness, ana):
    """The early check passed; the conditional UPDATE at record time decides."""
    contact, conversation = f.subject(fitness, ana)
    plan = decision_prepare(
        organization=fitness,
        contact=contact,
        conversation=conversation,
        trigger="manual",
        now=f.NOW,
    )
    CreditAccount.objects.filter(organization=fitness).update(plan_balance=0)
    with pytest.raises(PaymentRequired) as raised:
        decision_record(plan=plan)
    assert raised.value.code == "credits_exhausted"
    assert not Decision.objects.exists()
    assert not ConversationMemory.objects.exists()
    assert _ledger(fitness) == [("plan_grant", 500)]


def test_llm_decisions_cost_more_and_a_fallback_costs_like_rules(llm, fitness, ana):
    from tests.decisions.test_llm import completion, proposal, send
    from tests.support.http import Reply

    llm.respond(Reply(body=completion(proposal(send("Hi Ana!", "greeting")))))
    assert f.decide(fitness, ana, message="hi").credits_used == 3
    llm.respond(Reply(status=500))
    assert f.decide(fitness, ana, message="hi", now=f.NOW + timedelta(minutes=1)).credits_used == 1


def test_too_few_credits_for_the_llm_get_a_rules_decision(llm, fitness, ana):
    credits_account(organization=fitness, now=f.NOW)
    CreditAccount.objects.filter(organization=fitness).update(plan_balance=2)
    decision = f.decide(fitness, ana, message="hi")
    assert llm.requests == []
    assert (decision.engine, decision.engine_requested, decision.credits_used) == (
        "rules",
        "llm",
        1,
    )
    assert decision.fallback_reason.startswith("2 credit(s) left")


@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_never_overdraw(rules_engine):
    org = f.organization("fitness")
    contacts = [f.contact(org, name=f"C{i}") for i in range(8)]
    credits_account(organization=org)
    CreditAccount.objects.filter(organization=org).update(plan_balance=3)
    results: list = []
    barrier = threading.Barrier(len(contacts))

    def decide(who):
        try:
            contact, conversation = decision_subject_get(organization=org, contact_id=who.pk)
            barrier.wait(timeout=10)
            decision_make(
                organization=org, contact=contact, conversation=conversation, trigger="manual"
            )
            results.append("ok")
        except PaymentRequired:
            results.append("402")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=decide, args=(who,)) for who in contacts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["402"] * 5 + ["ok"] * 3
    account = CreditAccount.objects.get(organization=org)
    assert (account.plan_balance, account.topup_balance) == (0, 0)
    assert Decision.objects.filter(organization=org).count() == 3
    assert CreditLedgerEntry.objects.filter(organization=org, kind="decision").count() == 3
    assert Event.objects.filter(organization=org, type="decision.made").count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_of_one_event_decide_once(rules_engine):
    org = f.organization("fitness")
    who = f.contact(org)
    outcomes: list = []
    barrier = threading.Barrier(4)

    def decide():
        try:
            contact, conversation = decision_subject_get(organization=org, contact_id=who.pk)
            barrier.wait(timeout=10)
            decision, created = decision_make(
                organization=org,
                contact=contact,
                conversation=conversation,
                trigger="message.received",
                message="hi",
                event_id="evt-race",
            )
            outcomes.append((decision.pk, created))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len({pk for pk, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False, False, False, True]
    assert CreditLedgerEntry.objects.filter(organization=org, kind="decision").count() == 1
    assert Event.objects.filter(organization=org, type="decision.made").count() == 1
